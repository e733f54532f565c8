"""Loss-curve plots of a sweep, and of several sweeps overlaid (matplotlib's object API:
no pyplot, no global backend state). Each returns False when matplotlib is missing."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmlab.io import atomic_write
from glmlab.report.load import Run, Sweep, differing_config
from glmlab.runs.layout import RunStatus

__all__ = ["loss_caveat", "plot_compare_curves", "plot_curves"]

PANELS = (("loss", "training loss"), ("val_loss", "validation loss"))
LINE_STYLES = ("-", "--", ":", "-.")


def _figure() -> tuple[Any, Any, Any] | None:
    """A two-panel figure, its axes and the tab10 colour map; None without matplotlib."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, 2), colormaps["tab10"]


# Settings that change what a loss measures: the task it is computed on, and the tokens it
# is counted in (nats per token of another vocabulary are other units).
_LOSS_UNITS = ("objective.", "data.vocab_size", "data.tokenizer_file")


def loss_caveat(groups: dict[str, list[Run]]) -> str | None:
    """The caveat a loss figure carries when its curves differ in objective or vocabulary
    (the report does not test these losses against each other), else None."""
    keys = [k for k in differing_config(groups) if k.startswith(_LOSS_UNITS)]
    if not keys:
        return None
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    return (
        f"Not comparable between these curves: each loss is on its own objective and "
        f"vocabulary ({shown} differ); compare the evaluation suite's metrics instead"
    )


def _caveat(fig: Any, text: str | None) -> None:
    if text:
        fig.suptitle(f"⚠ {text}", fontsize=9, color="darkred")


def _finish(ax: Any, title: str, legend_size: int) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=legend_size)


def plot_curves(sweep: Sweep, path: Path) -> bool:
    """Training and validation loss per variant: the mean over seeds, a band from the
    lowest to the highest seed, × at a diverged run's last logged step."""
    made = _figure()
    if made is None:
        return False
    fig, axes, colors = made
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        firsts: list[float] = []
        lowest = math.inf
        for i, v in enumerate(sweep.variants):
            curves = [c for c in (r.curve(key) for r in v.runs) if c]
            if not curves:
                continue
            color = colors(i % 10)  # by variant index: the same colour in both panels
            steps = sorted(set().union(*curves))
            at = [[c[s] for c in curves if s in c] for s in steps]
            ax.plot(steps, [statistics.fmean(a) for a in at], color=color, label=v.label)
            ax.fill_between(
                steps, [min(a) for a in at], [max(a) for a in at], color=color, alpha=0.2
            )
            firsts += [c[min(c)] for c in curves]
            lowest = min(lowest, *(min(c.values()) for c in curves))
            for r in v.with_status(RunStatus.DIVERGED):
                c = r.curve(key)
                if c:
                    last = max(c)
                    ax.plot([last], [c[last]], marker="x", color=color, markersize=10, mew=2.5)
        if firsts and max(firsts) > lowest:
            # A loss that explodes would flatten every other curve: clip above the start.
            ax.set_ylim(top=max(firsts) + 0.1 * (max(firsts) - lowest))
        _finish(ax, title, 8)
    _caveat(fig, loss_caveat({v.label: v.runs for v in sweep.variants}))
    fig.tight_layout()
    # Atomic: a killed or full-disk write never leaves half a picture (glmlab.io).
    atomic_write(path, lambda f: fig.savefig(f, format=Path(path).suffix[1:] or "png"))
    return True


def plot_compare_curves(sweeps: Sequence[Sweep], names: Sequence[str], path: Path) -> bool:
    """Training and validation loss of every sweep's variants overlaid (mean over the
    completed seeds): one colour per variant label, one line style per sweep. False when
    there is nothing to draw or no matplotlib."""
    made = _figure()
    if made is None:
        return False
    fig, axes, colors = made
    labels = list(dict.fromkeys(v.label for s in sweeps for v in s.variants))
    drawn = False
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        for j, (sweep, name) in enumerate(zip(sweeps, names, strict=True)):
            for v in sweep.variants:
                runs = v.with_status(RunStatus.COMPLETED)
                curves = [c for c in (r.curve(key) for r in runs) if c]
                if not curves:
                    continue
                steps = sorted(set().union(*curves))
                means = [statistics.fmean(c[t] for c in curves if t in c) for t in steps]
                ax.plot(
                    steps,
                    means,
                    color=colors(labels.index(v.label) % 10),
                    linestyle=LINE_STYLES[j % len(LINE_STYLES)],
                    label=f"{name}: {v.label}",
                )
                drawn = True
        _finish(ax, title, 7)
    if not drawn:
        return False
    by_curve = {
        f"{n}: {v.label}": v.runs for s, n in zip(sweeps, names, strict=True) for v in s.variants
    }
    _caveat(fig, loss_caveat(by_curve))
    fig.tight_layout()
    # Atomic: a killed or full-disk write never leaves half a picture (glmlab.io).
    atomic_write(path, lambda f: fig.savefig(f, format=Path(path).suffix[1:] or "png"))
    return True
