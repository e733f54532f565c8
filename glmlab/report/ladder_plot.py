"""The ladder plot: each verdict metric against training compute, one colour per variant,
seed runs as dots with their range per rung as a band, fitted curves (dotted beyond the
largest rung, up to the target compute); no curve where the points determine no fit. matplotlib's object API, as glmlab/report/plots.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glmlab.io import atomic_write
from glmlab.report.metrics import metric_info

if TYPE_CHECKING:
    from glmlab.report.ladder import Ladder

__all__ = ["plot_ladder"]


def plot_ladder(ladder: Ladder, path: Path) -> bool:
    """Write the plot to ``path``; False when matplotlib is missing or nothing to plot."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    trends = [t for t in ladder.trends.values() if t.cells]
    if not trends:
        return False
    fig = Figure(figsize=(6 * len(trends), 4.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(trends), squeeze=False)[0]
    colors = colormaps["tab10"]
    from glmlab.report.ladder_trend import target_of

    target = target_of(ladder).compute
    for ax, trend in zip(axes, trends, strict=True):
        computes = [c for byc in trend.cells.values() for c in byc]
        lo, top = min(computes), max(computes)
        pred = trend.predictor
        for i, label in enumerate(ladder.labels):
            cells = trend.cells.get(label)
            if not cells:
                continue
            color = colors(i % 10)
            cs = sorted(cells)
            for c in cs:
                ax.scatter([c] * len(cells[c]), cells[c], color=color, s=12, alpha=0.7)
            ax.fill_between(
                cs,
                [min(cells[c]) for c in cs],
                [max(cells[c]) for c in cs],
                color=color,
                alpha=0.15,
            )
            name = label + (" (baseline)" if label == ladder.baseline else "")
            if pred is not None and label in pred.names:
                inside = np.geomspace(lo, top, 60)
                ax.plot(inside, [pred.predict(label, c) for c in inside], color=color, label=name)
                if target > top:
                    beyond = np.geomspace(top, target, 30)
                    ax.plot(beyond, [pred.predict(label, c) for c in beyond], color=color, ls=":")
            else:
                ax.plot(cs, [float(np.mean(cells[c])) for c in cs], color=color, label=name)
        if target > top:
            ax.axvline(target, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs C")
        ax.set_title(metric_info(trend.metric).label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    # Atomic: a killed or full-disk write never leaves half a picture (glmlab.io).
    atomic_write(path, lambda f: fig.savefig(f, format=Path(path).suffix[1:] or "png"))
    return True
