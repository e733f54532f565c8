"""One metric across a ladder (:class:`MetricTrend`): per-rung paired differences, the fit
the points support (glmlab/ladder/predict.py) and what it predicts (the gap at the target
with its interval, crossings of the fitted curves, the compute-equivalent multiplier per
budget group), the prediction check on a held-out rung (glmlab/ladder/holdout.py), the lr
sensitivity from the grid runs, and the verdict across scale.

Accuracy-type metrics (higher is better, in [0, 1]) are predicted in two steps when the
runs record a loss of the evaluation suite: loss against compute, then accuracy against
loss (glmlab/ladder/link.py); otherwise as an error rate ``1 - y`` against compute, and
the trend says why.

A rung's difference comes from :func:`_rung_tests` (the report's statistics,
glmlab/report/assess.py); its significance and the verdict across scale from the report's
one verdict path, once every trend is built (glmlab/report/ladder_verdicts.py: one family
for the ladder, Holm-adjusted).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glmlab.ladder.fit import RungDiff, crossings
from glmlab.ladder.holdout import HoldoutCheck, check_holdout
from glmlab.ladder.link import LinkFit, TwoStep, fit_link
from glmlab.ladder.predict import (
    Estimate,
    Predictor,
    Selection,
    gap_estimate,
    multiplier,
    select_fit,
)
from glmlab.ladder.spec import Rung, show_lr
from glmlab.report.assess import assess_metric, reference_check, reference_levels
from glmlab.report.load import Variant
from glmlab.report.metrics import METRICS, REFERENCES, metric_info
from glmlab.report.rates import RateDiff
from glmlab.report.stats import Diff
from glmlab.report.verdicts import Rung as VerdictRung
from glmlab.report.verdicts import Verdict
from glmlab.runs.layout import RunStatus

if TYPE_CHECKING:
    from glmlab.report.ladder import Ladder

__all__ = ["MetricTrend", "Target", "build_trend", "holdout_check", "target_of"]

Cells = dict[str, dict[float, list[float]]]


@dataclass(frozen=True)
class Target:
    """The compute the gap is read at, and how far it lies from the ladder."""

    compute: float
    label: str
    beyond_span: bool


@dataclass
class TwoStepInfo:
    """How an accuracy was predicted: through ``loss`` (or why not)."""

    loss: str | None
    links: dict[str, LinkFit] = field(default_factory=dict)
    why_not: str = ""


@dataclass
class MetricTrend:
    """One metric across the ladder."""

    metric: str
    diffs: dict[str, list[RungDiff]] = field(default_factory=dict)  # variant -> per rung
    missing: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> rung -> why
    # variant -> every rung of the plan, as the verdict path reads it (counts, references)
    rungs: dict[str, list[VerdictRung]] = field(default_factory=dict)
    tests: dict[str, Any] = field(default_factory=dict)  # rung -> MetricTests
    cells: Cells = field(default_factory=dict)  # the ladder's rungs, measured C
    selection: Selection | None = None
    predictor: Any = None  # a Predictor: the fit, or the two-step map; None: no fit
    two_step: TwoStepInfo | None = None
    flip: bool = False
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    gaps: dict[str, Estimate] = field(default_factory=dict)  # at the target
    crossings: dict[str, list[float]] = field(default_factory=dict)
    contradicts: dict[str, bool] = field(default_factory=dict)
    multipliers: dict[str, dict[float, Estimate | None]] = field(default_factory=dict)
    holdout: HoldoutCheck | None = None
    holdout_fit: str = ""  # the form the prediction check used, or why none
    sensitivity: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)

    @property
    def fit(self) -> Any:
        return self.selection.fit if self.selection else None


def target_of(ladder: Ladder) -> Target:
    """The target compute: the plan's, else one rung step past the largest rung (the
    ladder's geometric mean spacing), labelled by its distance from the ladder."""
    rungs = ladder.plan.ladder_rungs()
    lo, top = ladder.rung_compute(rungs[0]), ladder.rung_compute(rungs[-1])
    span = top / lo
    if ladder.plan.target_compute is None:
        step = span ** (1.0 / max(len(rungs) - 1, 1))
        return Target(
            top * step, f"{step:.3g}x the largest rung: one rung step, extrapolated", False
        )
    c = float(ladder.plan.target_compute)
    ratio = c / top
    if ratio <= 1.0:
        return Target(c, f"{ratio:.3g}x the largest rung: inside the ladder", False)
    beyond = ratio > span
    return Target(
        c,
        f"{ratio:.3g}x the largest rung, extrapolated"
        + (f" beyond the ladder's own span ({span:.3g}x)" if beyond else ""),
        beyond,
    )


def _rung_tests(variants: list[Variant], base: Variant | None, metric: str) -> Any:
    """The per-rung test (the report's statistics: glmlab/report/assess.py)."""
    return assess_metric(variants, base, metric)


def _interval(d: Diff | RateDiff) -> tuple[float | None, float | None]:
    return (d.low, d.high) if isinstance(d, Diff) else (None, None)


def _per_rung(ladder: Ladder, trend: MetricTrend, rungs: list[Rung]) -> None:
    """Each rung's tests on every verdict run of each arm (diverged and failed ones
    counted, never dropped), the measured differences (significance follows once the
    ladder's family is adjusted) and the rung records the verdict path reads."""
    metric = trend.metric
    for rung in rungs:
        arms = {label: ladder.arms[(label, rung.name)] for label in ladder.labels}
        variants = [Variant(label, list(a.runs)) for label, a in arms.items()]
        base = next((v for v in variants if v.label == ladder.baseline), None)
        tests = _rung_tests(variants, base, metric)
        trend.tests[rung.name] = tests
        for v in variants:
            if v.values(metric):
                trend.cells.setdefault(v.label, {})[arms[v.label].compute()] = v.values(metric)
        check = reference_check([r for v in variants for r in v.runs], metric, tests.intervals)
        for label, arm in arms.items():
            if label == ladder.baseline:
                continue
            d = tests.diffs.get(label)
            why = ""
            if d is not None:
                low, high = _interval(d)
                diff = RungDiff(rung.name, arm.compute(), d.diff, low, high, False)
                trend.diffs.setdefault(label, []).append(diff)
            else:
                why = arm.why_missing() or (
                    f"baseline: {ladder.arms[(ladder.baseline, rung.name)].why_missing()}"
                    if ladder.baseline and not (base and base.values(metric))
                    else "no test"
                )
                trend.missing.setdefault(label, {})[rung.name] = why
            behind = ()
            if check is not None and base is not None:
                behind = tuple(
                    f"{lab} ({REFERENCES[check[0]]})"
                    for lab in (label, base.label)
                    if check[2].get(lab) == "not past"
                )
            own = tests.counts[label]
            trend.rungs.setdefault(label, []).append(
                VerdictRung(
                    rung.name,
                    arm.compute(),
                    d,
                    own,
                    tests.counts[base.label] if base is not None else own,
                    behind,
                    why,
                )
            )


def _sensitivity(ladder: Ladder, trend: MetricTrend) -> None:
    """Per (variant, rung) the difference to the baseline at each grid lr, both arms at
    that lr, on the tuning seeds (their mean: no interval)."""
    if ladder.baseline is None:
        return
    for rung in ladder.plan.ladder_rungs():
        means: dict[str, dict[str, float]] = {}
        for label in ladder.labels:
            by_lr: dict[str, list[float]] = {}
            for r in ladder.arms[(label, rung.name)].grid_runs:
                lr = dict(o.split("=", 1) for o in r.result.overrides if "=" in o)["train.lr"]
                if trend.metric in r.metrics:
                    by_lr.setdefault(show_lr(float(lr)), []).append(r.metrics[trend.metric])
            means[label] = {lr: statistics.fmean(v) for lr, v in by_lr.items()}
        base = means.get(ladder.baseline, {})
        for label in ladder.labels:
            if label == ladder.baseline:
                continue
            row = {
                lr: means[label][show_lr(lr)] - base[show_lr(lr)]
                for lr in ladder.plan.lr_grid
                if show_lr(lr) in means[label] and show_lr(lr) in base
            }
            if row:
                trend.sensitivity[(label, rung.name)] = row


def _is_accuracy(metric: str, cells: Cells) -> bool:
    return bool(metric_info(metric).higher_is_better) and all(
        0.0 <= y <= 1.0 for byc in cells.values() for ys in byc.values() for y in ys
    )


def _loss_for(ladder: Ladder, metric: str) -> str | None:
    """The loss an accuracy is predicted through: a suite loss among the verdict metrics,
    else token infilling's, if the runs record it."""
    runs = [r for a in ladder.arms.values() for r in a.completed()]
    present = {m for r in runs for m in r.metrics}
    candidates = [m for m in ladder.trends if m != metric] + ["infill_token_loss"]
    for m in candidates:
        info = METRICS.get(m)
        if m in present and info is not None and info.higher_is_better is False and info.task:
            return m
    return None


def _loss_cells(ladder: Ladder, loss: str, rungs: list[Rung]) -> Cells:
    out: Cells = {}
    for rung in rungs:
        for label in ladder.labels:
            arm = ladder.arms[(label, rung.name)]
            values = [r.metrics[loss] for r in arm.completed() if loss in r.metrics]
            if values:
                out.setdefault(label, {})[arm.compute()] = values
    return out


def _predictor(
    ladder: Ladder, trend: MetricTrend, rungs: list[Rung], cells: Cells
) -> tuple[Selection, Predictor | None, TwoStepInfo | None]:
    """The fit of ``cells`` (the ladder's ``fit``), and for an accuracy the two-step map."""
    plan = ladder.plan
    if not trend.flip:
        sel = select_fit(cells, plan.fit, n_boot=plan.bootstrap)
        return sel, (sel.fit if sel.fit is not None and sel.fit.curves else None), None
    loss = _loss_for(ladder, trend.metric)
    info = TwoStepInfo(loss)
    if loss is None:
        info.why_not = "the runs record no loss of the evaluation suite to predict it through"
    else:
        sel = select_fit(_loss_cells(ladder, loss, rungs), plan.fit, n_boot=plan.bootstrap)
        by_label = {
            label: [
                r
                for rung in rungs
                for arm in [ladder.arms[(label, rung.name)]]
                for r in [*arm.runs, *arm.grid_runs]
                if r.status == RunStatus.COMPLETED
                and loss in r.metrics
                and trend.metric in r.metrics
            ]
            for label in ladder.labels
        }
        every = [r for runs in by_label.values() for r in runs]
        floor = reference_levels(every, trend.metric).get("chance", 0.0)
        for label, own in by_label.items():
            info.links[label] = fit_link(
                [r.metrics[loss] for r in own], [r.metrics[trend.metric] for r in own], floor
            )
        bad = [lab for lab, link in info.links.items() if not link.determined]
        if sel.fit is None or not sel.determined:
            info.why_not = f"the {metric_info(loss).label} fit is not determined ({sel.why_not()})"
        elif bad:
            info.why_not = "the accuracy-loss sigmoid is not determined for " + "; ".join(
                f"{lab} ({info.links[lab].note})" for lab in bad
            )
        else:
            return sel, TwoStep(sel.fit, info.links), info
    sel = select_fit(cells, plan.fit, flip=True, n_boot=plan.bootstrap)
    return sel, (sel.fit if sel.fit is not None and sel.fit.curves else None), info


def build_trend(ladder: Ladder, metric: str) -> MetricTrend:
    """The trend of ``metric`` across ``ladder`` (module docstring)."""
    plan = ladder.plan
    trend = MetricTrend(metric)
    rungs = plan.ladder_rungs()
    _per_rung(ladder, trend, rungs)
    _sensitivity(ladder, trend)
    trend.flip = _is_accuracy(metric, trend.cells)
    trend.selection, trend.predictor, trend.two_step = _predictor(ladder, trend, rungs, trend.cells)
    target = target_of(ladder)
    lo = min((c for byc in trend.cells.values() for c in byc), default=target.compute)
    top = max((c for byc in trend.cells.values() for c in byc), default=target.compute)
    base = ladder.baseline
    for label in ladder.labels:
        if label == base:
            continue
        pred = trend.predictor
        if pred is None or base is None or label not in trend.cells or base not in trend.cells:
            continue
        trend.gaps[label] = gap_estimate(pred, label, base, target.compute)
        trend.crossings[label] = crossings(pred, label, base, lo, max(top, target.compute))
        measured = [d.diff for d in trend.diffs.get(label, [])]
        gap = trend.gaps[label].value
        trend.contradicts[label] = bool(measured) and all(gap * m < 0 for m in measured)
        trend.multipliers[label] = _multipliers(ladder, trend, label, pred, top)
    if plan.held_out() is not None:
        holdout_check(ladder, trend)
    return trend


def _multipliers(
    ladder: Ladder, trend: MetricTrend, label: str, pred: Predictor, top: float
) -> dict[float, Estimate | None]:
    """The compute-equivalent multiplier at each budget group's largest rung (the ladder's
    own group from its fit; the budget axis's from fits of their own)."""
    out: dict[float, Estimate | None] = {
        ladder.plan.tokens_per_param: multiplier(pred, label, ladder.baseline, top)
    }
    for ratio, rungs in ladder.plan.ratio_groups().items():
        if ratio == ladder.plan.tokens_per_param:
            continue
        cells: Cells = {}
        for rung in rungs:
            for lab in (label, ladder.baseline):
                arm = ladder.arms[(lab, rung.name)]
                values = [
                    r.metrics[trend.metric] for r in arm.completed() if trend.metric in r.metrics
                ]
                if values:
                    cells.setdefault(lab, {})[arm.compute()] = values
        sel = select_fit(cells, ladder.plan.fit, flip=trend.flip)
        if sel.fit is None or not sel.fit.curves or len(cells) < 2:
            out[ratio] = None
            continue
        c_top = max(c for byc in cells.values() for c in byc)
        out[ratio] = multiplier(sel.fit, label, ladder.baseline, c_top)
    return out


def holdout_check(ladder: Ladder, trend: MetricTrend) -> None:
    """The prediction check on the held-out rung (``trend.holdout``)."""
    plan = ladder.plan
    held, fit_rungs = plan.held_out(), plan.fit_rungs()
    held_c = {lab: ladder.arms[(lab, held.name)].compute() for lab in ladder.labels}
    cells = {
        lab: {c: ys for c, ys in byc.items() if c != held_c.get(lab)}
        for lab, byc in trend.cells.items()
    }
    cells = {lab: byc for lab, byc in cells.items() if byc}
    sel, pred, two = _predictor(ladder, trend, fit_rungs, cells)
    problem = ""
    if pred is None:
        problem = "the smaller rungs determine no fit: " + sel.why_not()
        if two is not None and two.why_not:
            problem = f"no two-step prediction ({two.why_not}); as an error rate, {problem}"
        trend.holdout_fit = "none"
    else:
        via = (
            f", accuracy through {metric_info(two.loss).label}" if isinstance(pred, TwoStep) else ""
        )
        trend.holdout_fit = sel.fit.mode + via
        if not sel.determined:
            trend.holdout_fit += " (not determined: " + sel.why_not() + ")"
    measured = {
        lab: [
            r.metrics[trend.metric]
            for r in ladder.arms[(lab, held.name)].completed()
            if trend.metric in r.metrics
        ]
        for lab in ladder.labels
    }
    trend.holdout = check_holdout(
        pred,
        rung=held.name,
        measured=measured,
        compute=held_c,
        diffs=trend.diffs,
        baseline=ladder.baseline,
        problem=problem,
    )
