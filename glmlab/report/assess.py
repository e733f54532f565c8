"""What a sweep report tests for each metric, how, and the verdicts (docs/REPORTS.md).

- Per metric (:func:`assess_metric`): each variant's mean with its 95% interval and its
  difference to the baseline (:func:`glmlab.report.stats.compare_arms`: paired by seed
  when both arms completed the same seeds, over seeds and items when every run saved
  per-item scores, else over seeds only). Throughput and memory are shown, never tested;
  the validation loss is not tested between variants that train different objectives.
- Per sweep (:func:`assessment`): the verdict metrics' tests and the stability tests in
  one family (:mod:`glmlab.report.family`), adjusted, then one verdict per variant and
  verdict metric (:func:`glmlab.report.verdicts.judge`); the A/A control arm, when the
  sweep has one, in a family of its own.
- Past the reference (:func:`reference_check`): an arm's whole 95% interval is on the
  better side of the metric's trivial reference (chance for cloze, the unigram model for
  losses), for every metric that has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from glmlab.eval.metrics import item_fractions
from glmlab.report.family import Family
from glmlab.report.load import Sweep, differing_config, report_settings
from glmlab.report.metrics import (
    NOT_TESTED,
    REFERENCES,
    TASK_OF_METRIC,
    TRIVIAL,
    margin_of,
    metric_info,
)
from glmlab.report.stability import RunCount, Stability, count_runs, stability_test
from glmlab.report.stats import Arm, Diff, Estimate, RunItems, arm_estimate, compare_arms
from glmlab.report.verdicts import Rung, Verdict, judge, key, register, register_stability

__all__ = [
    "CONTROL_KEY",
    "ITEMS",
    "NONE",
    "SEEDS",
    "Assessment",
    "MetricTests",
    "arm_of",
    "assess_metric",
    "assessment",
    "control_variant",
    "reference_check",
    "reference_levels",
    "tests_of",
]

ITEMS, SEEDS, NONE = "items", "seeds", "none"
CONTROL_KEY = "train.stream"  # the A/A arm: the baseline under another seed stream


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
    diffs: dict[str, Diff | None] = field(default_factory=dict)
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
        untestable = "not tested: throughput and memory measure the machine and its load"
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


def control_variant(sweep: Sweep) -> Any:
    """The sweep's A/A control arm: the baseline's overrides plus ``train.stream=k``
    (k > 0), or None."""
    if sweep.baseline is None:
        return None
    base = set(sweep.baseline.label.split(", ")) - {"(defaults)"}
    for v in sweep.variants:
        parts = set(v.label.split(", "))
        extra = parts - base
        if len(extra) == 1 and base <= parts:
            k, _, value = next(iter(extra)).partition("=")
            if k.lstrip("+~") == CONTROL_KEY and value not in ("0", ""):
                return v
    return None


@dataclass
class Assessment:
    """A sweep's verdicts: the family, per (variant, metric) the rung and its verdict,
    per variant its stability, and the A/A control's own family and verdicts."""

    family: Family
    margins: dict[str, float | None]
    rungs: dict[tuple[str, str], Rung] = field(default_factory=dict)
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    stability: dict[str, Stability] = field(default_factory=dict)
    control: str | None = None
    control_family: Family = field(default_factory=lambda: Family("the A/A control"))
    control_verdicts: dict[str, Verdict] = field(default_factory=dict)

    def p_adjusted(self, label: str, metric: str) -> float | None:
        """The adjusted p of a variant's difference on a metric (None: not in a family)."""
        fam = self.control_family if label == self.control else self.family
        return fam.p(key(label, metric, "", "difference"))

    @property
    def control_alarm(self) -> list[str]:
        """The metrics on which the A/A control differs significantly."""
        return [
            m
            for m in self.control_verdicts
            if (p := self.control_family.p(key(self.control, m, "", "difference"))) is not None
            and p < 0.05
        ]


def _behind(sweep: Sweep, tests: MetricTests, labels: Sequence[str]) -> tuple[str, ...]:
    check = reference_check(sweep.runs, tests.metric, tests.intervals)
    if check is None:
        return ()
    ref, _, status = check
    return tuple(f"{lab} ({REFERENCES[ref]})" for lab in labels if status.get(lab) == "not past")


def _rung(sweep: Sweep, tests: MetricTests, label: str) -> Rung:
    base = sweep.baseline.label
    return Rung(
        "",
        None,
        tests.diffs.get(label),
        tests.counts[label],
        tests.counts[base],
        _behind(sweep, tests, [label, base]),
    )


def assessment(sweep: Sweep) -> Assessment:
    """The sweep's family, verdicts and control (module docstring), computed once."""
    if "assessment" in sweep.cache:
        return sweep.cache["assessment"]
    setting = report_settings(sweep.dir).get("margin") if sweep.dir else None
    out = Assessment(Family(), {m: margin_of(m, setting) for m in sweep.primary})
    base = sweep.baseline
    sweep.cache["assessment"] = out
    if base is None:
        return out
    control = control_variant(sweep)
    out.control = control.label if control is not None else None
    others = [v for v in sweep.variants if v is not base and v is not control]
    tested = [m for m in sweep.primary if tests_of(sweep, m).method != NONE]
    for metric in tested:
        for v in others:
            rung = _rung(sweep, tests_of(sweep, metric), v.label)
            out.rungs[(v.label, metric)] = rung
            register(out.family, v.label, metric, [rung], out.margins[metric])
    base_count = count_runs(r.status for r in base.runs)
    for v in others:
        out.stability[v.label] = stability_test(count_runs(r.status for r in v.runs), base_count)
        register_stability(out.family, v.label, out.stability[v.label])
    out.family.adjust()
    for metric in tested:
        info = metric_info(metric)
        for v in others:
            out.verdicts[(v.label, metric)] = judge(
                out.family,
                v.label,
                metric,
                [out.rungs[(v.label, metric)]],
                higher_is_better=info.higher_is_better,
                margin=out.margins[metric],
                stability=out.stability[v.label],
                digits=info.digits,
            )
    if control is not None:
        rungs = {m: _rung(sweep, tests_of(sweep, m), control.label) for m in tested}
        for metric, rung in rungs.items():
            register(out.control_family, control.label, metric, [rung], None)
        out.control_family.adjust()
        for metric, rung in rungs.items():
            info = metric_info(metric)
            out.control_verdicts[metric] = judge(
                out.control_family,
                control.label,
                metric,
                [rung],
                higher_is_better=info.higher_is_better,
                margin=None,
                digits=info.digits,
            )
    return out
