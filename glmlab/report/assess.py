"""What a sweep report tests for each metric, and how (docs/REPORTS.md).

- Metrics of the evaluation suite with per-item scores in every run (``eval_items.json``):
  each variant against the baseline paired by item, with a hierarchical bootstrap over
  seeds and items (:func:`glmlab.report.stats.paired_bootstrap`).
- Without per-item scores (the validation loss; run directories written before
  ``eval_items.json`` existed): Welch's t-test over seeds (:func:`glmlab.report.stats.welch_test`).
- Throughput and memory: shown, never tested (they measure the machine and its load).
- The validation loss between variants that train different objectives: shown, not
  tested (each variant is scored on its own task).

With several variants against one baseline, the p-values of one metric are adjusted with
Holm's method. The reference levels (chance, unigram, untrained model) come from the runs'
``eval_items.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from glmlab.eval.metrics import item_fractions
from glmlab.report.load import Sweep, differing_config
from glmlab.report.metrics import NOT_TESTED, REFERENCES, TASK_OF_METRIC
from glmlab.report.bootstrap import (
    Interval,
    PairedDiff,
    RunItems,
    Welch,
    bootstrap_mean,
    holm,
    paired_bootstrap,
    summary_stats,
    welch_test,
)

PAIRED, WELCH, NONE = "paired", "welch", "none"


class RunLike(Protocol):
    @property
    def metrics(self) -> dict[str, float]: ...

    @property
    def eval_items(self) -> dict[str, Any]: ...


class VariantLike(Protocol):
    label: str

    @property
    def runs(self) -> Sequence[RunLike]: ...

    def values(self, metric: str) -> list[float]: ...


@dataclass
class MetricTests:
    """One metric across a sweep: per variant its 95% interval and its difference to the
    baseline (``None`` for the baseline and where nothing can be tested)."""

    metric: str
    method: str  # PAIRED, WELCH or NONE
    reason: str  # why NONE (or why WELCH instead of PAIRED); empty otherwise
    intervals: dict[str, Interval | None] = field(default_factory=dict)
    diffs: dict[str, PairedDiff | Welch | None] = field(default_factory=dict)


def run_items(run: RunLike, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A completed run's per-item (numerator, denominator) of ``metric``, if it saved them."""
    task = TASK_OF_METRIC.get(metric)
    scores = (run.eval_items.get("tasks") or {}).get(task) if task else None
    if not scores or metric not in run.metrics:
        return None
    return item_fractions(task, scores)


def variant_items(variant: VariantLike, metric: str) -> RunItems | None:
    """The per-item scores of every run of ``variant`` that reports ``metric``; None if
    any of them lacks them or they disagree on the number of items."""
    runs = [r for r in variant.runs if metric in r.metrics]
    pairs = [run_items(r, metric) for r in runs]
    if not pairs or any(p is None for p in pairs) or len({p[0].shape for p in pairs}) != 1:
        return None
    return RunItems.from_runs(pairs)


def assess_metric(
    variants: Sequence[VariantLike],
    baseline: VariantLike | None,
    metric: str,
    *,
    untestable: str = "",
) -> MetricTests:
    """The intervals and baseline differences of ``metric`` (see the module docstring);
    ``untestable`` is a reason to show the metric without testing it."""
    if metric in NOT_TESTED:
        untestable = "not tested: throughput and memory measure the machine and its load"
    items = {v.label: variant_items(v, metric) for v in variants if v.values(metric)}
    paired = bool(items) and all(i is not None for i in items.values())
    if paired and len({i.n_items for i in items.values()}) > 1:
        paired = False
    if untestable:
        out = MetricTests(metric, NONE, untestable)
    elif paired:
        out = MetricTests(metric, PAIRED, "")
    else:
        reason = (
            "seeds only: no per-item scores"
            if metric in TASK_OF_METRIC
            else "seeds only: scored per run, not per item"
        )
        out = MetricTests(metric, WELCH, reason)
    base_items = items.get(baseline.label) if baseline else None
    for v in variants:
        values = v.values(metric)
        if not values:
            out.intervals[v.label] = None
            continue
        if out.method == PAIRED:
            out.intervals[v.label] = bootstrap_mean(items[v.label])
        else:
            s = summary_stats(values)
            ci = s.ci if s else None
            out.intervals[v.label] = Interval(s.mean, *(ci or (None, None)))
        if out.method == NONE or baseline is None or v is baseline:
            out.diffs[v.label] = None
        elif out.method == PAIRED and base_items is not None:
            out.diffs[v.label] = paired_bootstrap(items[v.label], base_items)
        elif out.method == WELCH:
            out.diffs[v.label] = welch_test(values, baseline.values(metric))
        else:
            out.diffs[v.label] = None
    tested = [k for k, d in out.diffs.items() if d is not None]
    if len(tested) > 1:
        for k, p in zip(tested, holm([out.diffs[k].p for k in tested]), strict=True):
            d = out.diffs[k]
            out.diffs[k] = type(d)(**{**d.__dict__, "p_adjusted": p})
    return out


def reference_levels(runs: Iterable[RunLike], metric: str) -> dict[str, float]:
    """``{reference: mean level over the runs}`` for ``metric`` from the runs'
    eval_items.json (chance only for cloze; the untrained model differs by seed)."""
    out: dict[str, float] = {}
    for key in REFERENCES:
        values = [
            r.eval_items["reference_metrics"][key][metric]
            for r in runs
            if metric in ((r.eval_items.get("reference_metrics") or {}).get(key) or {})
        ]
        if values:
            out[key] = float(np.mean(values))
    return out


def untestable_reason(sweep: Sweep, metric: str) -> str:
    """Why ``metric`` must not be tested between this sweep's variants, or ''."""
    if metric != "final_val_loss":
        return ""
    keys = differing_config({v.label: v.runs for v in sweep.variants})
    objective_keys = sorted(k for k in keys if k.startswith("objective."))
    if objective_keys:
        shown = ", ".join(objective_keys[:3]) + (", ..." if len(objective_keys) > 3 else "")
        return f"not tested: the variants train different objectives ({shown})"
    return ""


def tests_of(sweep: Sweep, metric: str) -> MetricTests:
    """:func:`assess_metric` for one metric of the sweep, computed once per sweep."""
    cache = sweep.cache.setdefault("tests", {})
    if metric not in cache:
        cache[metric] = assess_metric(
            sweep.variants, sweep.baseline, metric, untestable=untestable_reason(sweep, metric)
        )
    return cache[metric]
