"""Predict, then verify (``ladder.holdout: last``): the fit on the smaller rungs predicts
the held-out rung's metric per variant and the gap to the baseline, each with a 95%
prediction interval (glmlab/ladder/predict.py), and the held-out rung's own runs say how
it went: prediction error, whether the interval covered the measurement, and **decision
agreement** (DataDecide, Magnusson et al. 2025): does the sign, and the "significant" call,
of the difference at each smaller rung match the held-out rung's? The prediction's own
call (the sign of the predicted gap, and whether its interval excludes zero) is scored
the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from glmlab.ladder.fit import RungDiff
from glmlab.ladder.predict import Estimate, Predictor, gap_estimate, value_estimate

__all__ = ["Agreement", "GapCheck", "HoldoutCheck", "ValueCheck", "check_holdout"]


@dataclass(frozen=True)
class ValueCheck:
    """One variant's metric at the held-out rung: predicted and measured."""

    variant: str
    predicted: Estimate
    measured: float
    runs: int

    @property
    def error(self) -> float:
        return self.predicted.value - self.measured

    @property
    def covered(self) -> bool:
        return self.predicted.covers(self.measured)


@dataclass(frozen=True)
class Agreement:
    """A smaller rung's (or the prediction's) call against the held-out rung's."""

    source: str  # a rung's name, or "prediction"
    sign: bool  # same sign of the difference
    call: bool  # same "significant" call (and, when both are significant, the same sign)


@dataclass
class GapCheck:
    """One variant's gap to the baseline at the held-out rung: predicted and measured."""

    variant: str
    predicted: Estimate | None
    measured: RungDiff | None
    agreements: list[Agreement] = field(default_factory=list)

    @property
    def error(self) -> float | None:
        if self.predicted is None or self.measured is None:
            return None
        return self.predicted.value - self.measured.diff

    @property
    def covered(self) -> bool | None:
        if self.predicted is None or self.measured is None:
            return None
        return self.predicted.covers(self.measured.diff)

    def rungs_agreeing(self) -> tuple[int, int, int]:
        """(smaller rungs whose sign agrees, whose call agrees, smaller rungs compared)."""
        rungs = [a for a in self.agreements if a.source != "prediction"]
        return sum(a.sign for a in rungs), sum(a.call for a in rungs), len(rungs)


@dataclass
class HoldoutCheck:
    """The prediction check of one metric (``problem``: why there is no prediction)."""

    rung: str
    values: list[ValueCheck] = field(default_factory=list)
    gaps: list[GapCheck] = field(default_factory=list)
    problem: str = ""


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _agree(source: str, diff: float, significant: bool, held: RungDiff) -> Agreement:
    same_sign = _sign(diff) == _sign(held.diff)
    same_call = significant == held.significant and (not significant or same_sign)
    return Agreement(source, same_sign, same_call)


def check_holdout(
    predictor: Predictor | None,
    *,
    rung: str,
    measured: Mapping[str, Sequence[float]],
    compute: Mapping[str, float],
    diffs: Mapping[str, Sequence[RungDiff]],
    baseline: str | None,
    problem: str = "",
) -> HoldoutCheck:
    """The check at held-out rung ``rung``: ``measured`` its seed values per variant,
    ``compute`` its measured C per variant, ``diffs`` every rung's measured difference per
    variant (the held-out one among them); ``predictor`` fitted on the smaller rungs only
    (None, with ``problem`` saying why, when they determine no fit)."""
    out = HoldoutCheck(rung, problem=problem)
    if predictor is not None:
        for v, ys in measured.items():
            if ys and v in compute and v in getattr(predictor, "names", [v]):
                est = value_estimate(predictor, v, compute[v], runs=len(ys))
                out.values.append(ValueCheck(v, est, statistics.fmean(ys), len(ys)))
    for v, per_rung in diffs.items():
        if v == baseline:
            continue
        held = next((d for d in per_rung if d.rung == rung), None)
        predicted = None
        if predictor is not None and baseline is not None and v in compute and baseline in compute:
            names = getattr(predictor, "names", [v, baseline])
            if v in names and baseline in names:
                runs = (len(measured.get(v, [])) or 1, len(measured.get(baseline, [])) or 1)
                predicted = gap_estimate(
                    predictor, v, baseline, (compute[v], compute[baseline]), runs=runs
                )
        check = GapCheck(v, predicted, held)
        if held is not None:
            for d in per_rung:
                if d.rung != rung:
                    check.agreements.append(_agree(d.rung, d.diff, d.significant, held))
            if predicted is not None and math.isfinite(predicted.half):
                check.agreements.append(
                    _agree("prediction", predicted.value, predicted.excludes_zero, held)
                )
        out.gaps.append(check)
    return out
