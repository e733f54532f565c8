"""A ladder's verdicts across scale, from the report's one verdict path
(glmlab/report/verdicts.py): every rung's difference, the gap averaged over the rungs and
its trend with compute, the equivalence tests (where ``report.margin`` declares a margin)
and each variant's stability test over its seed runs are one family, Holm-adjusted; then
one verdict per variant and metric, and each rung's significance as the family says.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from glmlab.ladder.fit import crossover
from glmlab.report.metrics import declared_margin, margin_of, metric_info
from glmlab.report.stability import RunCount, count_runs, stability_test
from glmlab.report.stats import ALPHA
from glmlab.report.verdicts import judge, key, register, register_stability
from glmlab.runs.layout import RunStatus

if TYPE_CHECKING:
    from glmlab.report.ladder import Ladder

__all__ = ["judge_ladder"]


def _arm_count(ladder: Ladder, label: str) -> RunCount:
    """A variant's verdict runs over every rung of the ladder."""
    total = RunCount(0, 0, 0)
    for rung in ladder.plan.ladder_rungs():
        total += count_runs(r.status for r in ladder.arms[(label, rung.name)].runs)
    return total


def judge_ladder(ladder: Ladder, margin_setting: Any = None) -> None:
    """Fill ``ladder.family``, ``ladder.stability``, each trend's ``verdicts`` and its rung
    differences' significance (module docstring)."""
    from glmlab.report.ladder_trend import holdout_check

    if ladder.baseline is None:
        return
    family, others = ladder.family, [lab for lab in ladder.labels if lab != ladder.baseline]
    for metric, trend in ladder.trends.items():
        for label in others:
            register(
                family,
                label,
                metric,
                trend.rungs.get(label, []),
                declared_margin(metric, margin_setting),
            )
    base = _arm_count(ladder, ladder.baseline)
    for label in others:
        ladder.stability[label] = stability_test(_arm_count(ladder, label), base)
        # A divergence rate among the verdict metrics is tested already.
        if RunStatus.DIVERGED.value not in ladder.trends:
            register_stability(family, label, ladder.stability[label])
    family.adjust()
    for metric, trend in ladder.trends.items():
        info = metric_info(metric)
        for label in others:
            rungs = trend.rungs.get(label, [])

            def meet(lo: float, hi: float, label: str = label, fit: Any = trend.predictor) -> Any:
                return crossover(fit, label, ladder.baseline, lo, hi) if fit else None

            trend.verdicts[label] = judge(
                family,
                label,
                metric,
                rungs,
                higher_is_better=info.higher_is_better,
                margin=margin_of(metric, margin_setting),
                stability=ladder.stability[label],
                digits=info.digits,
                meet=meet,
            )
            trend.diffs[label] = [
                dataclasses.replace(
                    d,
                    significant=(p := family.p(key(label, metric, d.rung, "difference")))
                    is not None
                    and p < ALPHA,
                )
                for d in trend.diffs.get(label, [])
            ]
        if ladder.plan.held_out() is not None:
            holdout_check(ladder, trend)
