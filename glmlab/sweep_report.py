"""Sweep reports: one row per variant over its seeds, written as ``report.md`` in the sweep
directory by a Hydra callback when a multirun ends, or by ``glmlab report SWEEP_DIR``."""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from glmlab.io import read_json, write_text_atomic
from glmlab.run import RESULT

log = logging.getLogger("glmlab")


@dataclass
class VariantSummary:
    label: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [
            r["final_val_loss"]
            for r in self.runs
            if r["status"] == "completed" and r["final_val_loss"] is not None
        ]

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] != "completed"]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def variant_label(variant: list[str]) -> str:
    return ", ".join(variant) if variant else "(defaults)"


def differing_overrides(results: list[dict[str, Any]]) -> list[list[str]]:
    """Per run, the variant overrides whose key does not hold one value in every run:
    the settings that tell the sweep's variants apart, found automatically."""
    parsed = [dict(o.split("=", 1) for o in r.get("variant", [])) for r in results]
    keys = set().union(*parsed) if parsed else set()
    differing = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    return [sorted(f"{k}={v}" for k, v in p.items() if k in differing) for p in parsed]


def collect(sweep_dir: str | Path) -> list[VariantSummary]:
    """Group the runs found under ``sweep_dir`` (``*/result.json``) by variant."""
    results = [read_json(p) for p in sorted(Path(sweep_dir).glob(f"*/{RESULT}"))]
    groups: dict[str, VariantSummary] = {}
    for result, variant in zip(results, differing_overrides(results), strict=True):
        label = variant_label(variant)
        groups.setdefault(label, VariantSummary(label)).runs.append(result)
    return list(groups.values())


def _is_baseline(label: str, baseline: str | list[str] | None) -> bool:
    if baseline is None:
        return False
    wanted = [baseline] if isinstance(baseline, str) else list(baseline)
    return set(label.split(", ")) == {w.strip() for item in wanted for w in item.split(", ")}


def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render_markdown(
    sweep_dir: str | Path, variants: list[VariantSummary], baseline: str | None
) -> str:
    base = next((v for v in variants if _is_baseline(v.label, baseline)), None)
    lines = [
        f"# Sweep report: {Path(sweep_dir).resolve().name}",
        "",
        f"Sweep directory: `{Path(sweep_dir).resolve()}`. Metric: final validation loss (GLM objective "
        "on the held-out split, mean ± sample std over seeds; lower is better).",
        "",
        "| variant | final val loss (mean ± std) | Δ vs baseline | runs ok / total | seeds |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        mark = " **(baseline)**" if base is v else ""
        spread = f"{_fmt(v.mean)} ± {_fmt(v.std)}" if v.mean is not None else "–"
        delta = (
            "–"
            if base is None or base is v or v.mean is None or base.mean is None
            else f"{v.mean - base.mean:+.4f}"
        )
        seeds = ",".join(str(r.get("seed")) for r in sorted(v.runs, key=lambda r: r.get("seed", 0)))
        lines.append(
            f"| {v.label}{mark} | {spread} | {delta} | {len(v.values)} / {len(v.runs)} | {seeds} |"
        )
    problems = [(v, r) for v in variants for r in v.problems]
    lines += ["", "## Failed, diverged and unfinished runs", ""]
    if not problems:
        lines.append("None: every run completed.")
    for v, r in problems:
        lines.append(
            f"- {r['status']}: {v.label}, seed {r.get('seed')} at step {r.get('step')}: {r.get('error')} (`{r.get('run_dir')}`)"
        )
    return "\n".join(lines) + "\n"


def build_report(sweep_dir: str | Path, *, baseline: str | None = None) -> Path:
    """Write ``report.md`` for the sweep in ``sweep_dir`` and return its path."""
    sweep_dir = Path(sweep_dir)
    if baseline is None and (sweep_dir / "multirun.yaml").exists():
        baseline = OmegaConf.load(sweep_dir / "multirun.yaml").get("report", {}).get("baseline")
    variants = collect(sweep_dir)
    if not variants:
        raise FileNotFoundError(
            f"no runs under {sweep_dir}: expected <run>/{RESULT} files from a glmlab multirun"
        )
    path = sweep_dir / "report.md"
    write_text_atomic(path, render_markdown(sweep_dir, variants, baseline))
    return path


class SweepReportCallback(Callback):
    """Hydra callback: build the sweep report when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        baseline = config.get("report", {}).get("baseline")
        try:
            path = build_report(config.hydra.sweep.dir, baseline=baseline)
        except FileNotFoundError as exc:
            log.error("no sweep report: %s", exc)
            return
        print(f"glmlab: sweep report written to {path}")
