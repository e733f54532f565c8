"""What a sweep report tests for each metric, and how (docs/REPORTS.md, "Statistics").

- Per metric (:func:`assess_metric`): each variant's mean with its 95% interval and its
  difference to the baseline (:func:`glmlab.report.stats.compare_arms`: paired by seed
  when both arms completed the same seeds, over seeds and items when every run saved
  per-item scores, else over seeds only); a 0/1 outcome per run (diverged, stalled) as a
  rate with Boschloo's exact test (glmlab/report/rates.py). Throughput, memory and the
  counted cost are shown, never tested; the validation loss is not tested between variants
  that train different objectives.
- Past the reference (:func:`reference_check`): an arm's whole 95% interval is on the
  better side of the metric's trivial reference (chance for cloze, the unigram model for
  losses), for every metric that has one.

The family, the verdicts and the A/A control of a sweep: glmlab/report/sweep_verdicts.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.stats import binomtest

from glmlab.eval.metrics import item_fractions
from glmlab.report.load import Sweep, differing_config
from glmlab.report.metrics import NOT_TESTED, REFERENCES, TASK_OF_METRIC, TRIVIAL, metric_info
from glmlab.report.rates import RATE_METRICS, RateDiff, rate_test
from glmlab.report.stability import RunCount, count_runs
from glmlab.report.stats import Arm, Diff, Estimate, RunItems, arm_estimate, compare_arms

__all__ = [
    "EXACT",
    "ITEMS",
    "NONE",
    "SEEDS",
    "MetricTests",
    "arm_of",
    "assess_metric",
    "reference_check",
    "reference_levels",
    "tests_of",
    "variant_items",
]

ITEMS, SEEDS, EXACT, NONE = "items", "seeds", "exact", "none"


class RunLike(Protocol):
    @property
    def metrics(self) -> dict[str, float]: ...

    @property
    def eval_items(self) -> dict[str, Any]: ...

    @property
    def seed(self) -> Any: ...

    @property
    def status(self) -> str: ...


class VariantLike(Protocol):
    label: str

    @property
    def runs(self) -> Sequence[RunLike]: ...

    def values(self, metric: str) -> list[float]: ...


@dataclass
class MetricTests:
    """One metric across a sweep: per variant its mean with a 95% interval, its
    difference to the baseline (``None`` for the baseline and where nothing can be
    tested) and its runs; ``method`` is ITEMS, SEEDS or NONE (``reason``: why not ITEMS)."""

    metric: str
    method: str
    reason: str
    intervals: dict[str, Estimate | None] = field(default_factory=dict)
    diffs: dict[str, Diff | RateDiff | None] = field(default_factory=dict)
    counts: dict[str, RunCount] = field(default_factory=dict)


def run_items(run: RunLike, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A completed run's per-item (numerator, denominator) of ``metric``, if it saved them."""
    task = TASK_OF_METRIC.get(metric)
    scores = (run.eval_items.get("tasks") or {}).get(task) if task else None
    if not scores or metric not in run.metrics:
        return None
    return item_fractions(task, scores)


def arm_of(variant: VariantLike, metric: str, *, items: bool = True) -> Arm:
    """The completed runs of ``variant`` that report ``metric``: values, seeds, and the
    per-item scores when every one of them saved them (and ``items``)."""
    runs = [r for r in variant.runs if metric in r.metrics]
    values = tuple(r.metrics[metric] for r in runs)
    seeds = tuple(r.seed for r in runs)
    pairs = [run_items(r, metric) for r in runs] if items else []
    ok = bool(pairs) and all(p is not None for p in pairs) and len({p[0].shape for p in pairs}) == 1
    return Arm(values, seeds, RunItems.from_runs(pairs) if ok else None)


def assess_metric(
    variants: Sequence[VariantLike],
    baseline: VariantLike | None,
    metric: str,
    *,
    untestable: str = "",
) -> MetricTests:
    """The intervals and baseline differences of ``metric`` (module docstring);
    ``untestable``: a reason to show the metric without testing it."""
    if metric in NOT_TESTED:
        untestable = (
            "not tested: the objective's supervision and cost, counted, not a result"
            if metric in ("loss_tokens_per_step", "train_flops")
            else "not tested: throughput and memory measure the machine and its load"
        )
    if metric in RATE_METRICS and not untestable:
        return _rate_tests(variants, baseline, metric)
    arms = {v.label: arm_of(v, metric) for v in variants}
    with_values = [a for a in arms.values() if a.n]
    by_items = bool(with_values) and all(a.items is not None for a in with_values)
    if by_items and len({a.items.n_items for a in with_values}) > 1:
        by_items = False
        arms = {v.label: arm_of(v, metric, items=False) for v in variants}
    if not by_items:
        arms = {label: Arm(a.values, a.seeds) for label, a in arms.items()}
    if untestable:
        out = MetricTests(metric, NONE, untestable)
    elif by_items:
        out = MetricTests(metric, ITEMS, "")
    else:
        reason = (
            "seeds only: no per-item scores"
            if metric in TASK_OF_METRIC
            else "seeds only: scored per run, not per item"
        )
        out = MetricTests(metric, SEEDS, reason)
    base = arms.get(baseline.label) if baseline is not None else None
    for v in variants:
        out.counts[v.label] = count_runs(r.status for r in v.runs)
        arm = arms[v.label]
        out.intervals[v.label] = arm_estimate(arm)
        tested = out.method != NONE and base is not None and v is not baseline
        out.diffs[v.label] = compare_arms(arm, base) if tested else None
    return out


def _rate_tests(
    variants: Sequence[VariantLike], baseline: VariantLike | None, metric: str
) -> MetricTests:
    """A 0/1 outcome per run (:data:`~glmlab.report.rates.RATE_METRICS`: diverged runs
    count): each variant's rate with its Clopper-Pearson 95% interval, and Boschloo's exact
    test against the baseline (glmlab/report/rates.py)."""
    out = MetricTests(metric, EXACT, "")
    base = baseline.values(metric) if baseline is not None else []
    for v in variants:
        out.counts[v.label] = count_runs(r.status for r in v.runs)
        values = v.values(metric)
        if not values:
            out.intervals[v.label], out.diffs[v.label] = None, None
            continue
        ci = binomtest(round(sum(values)), len(values)).proportion_ci()
        out.intervals[v.label] = Estimate(sum(values) / len(values), ci.low, ci.high)
        out.diffs[v.label] = None if v is baseline else rate_test(values, base)
    return out


def variant_items(variant: VariantLike, metric: str) -> RunItems | None:
    """The per-item scores of every completed run of ``variant`` on ``metric`` (None when
    one of them lacks them)."""
    return arm_of(variant, metric).items


def reference_levels(runs: Iterable[RunLike], metric: str) -> dict[str, float]:
    """``{reference: mean level over the runs}`` for ``metric`` from the runs'
    eval_items.json (chance only for cloze; the untrained model differs by seed)."""
    out: dict[str, float] = {}
    for ref in REFERENCES:
        values = [
            r.eval_items["reference_metrics"][ref][metric]
            for r in runs
            if metric in ((r.eval_items.get("reference_metrics") or {}).get(ref) or {})
        ]
        if values:
            out[ref] = float(np.mean(values))
    return out


def reference_check(
    runs: Iterable[RunLike], metric: str, intervals: dict[str, Estimate | None]
) -> tuple[str, float, dict[str, str]] | None:
    """(reference name, level, ``{label: past | not past | no interval}``) for the
    metric's trivial reference, or None when the runs recorded none. Past: the whole
    95% interval is on the better side of the level."""
    levels = reference_levels(runs, metric)
    ref = next((r for r in TRIVIAL if r in levels), None)
    better_high = metric_info(metric).higher_is_better
    if ref is None or better_high is None:
        return None
    level = levels[ref]
    status = {}
    for label, iv in intervals.items():
        if iv is None:
            continue
        if iv.low is None:
            status[label] = "no interval"
            continue
        edge = iv.low if better_high else iv.high
        status[label] = "past" if (edge > level if better_high else edge < level) else "not past"
    return ref, level, status


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
