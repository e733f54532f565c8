"""Rates over runs (how many runs of a variant diverged, or did not learn): each variant against the baseline
with Boschloo's exact test of two binomial proportions (``scipy.stats.boschloo_exact``,
uniformly more powerful than Fisher's at the same level), since a 0/1 outcome per seed has
no variance for a t-test when every seed agrees. Diverged runs count as events of both
rates: counted, never dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

from glmlab.report.stats import ALPHA
from glmlab.runs.layout import RunStatus

__all__ = ["RATE_METRICS", "RateDiff", "rate_test"]

# One 0/1 outcome per run: whether it diverged, whether it learned nothing.
RATE_METRICS = frozenset({RunStatus.DIVERGED.value, "stalled"})


@dataclass(frozen=True)
class RateDiff:
    """Variant rate minus baseline rate, with the counts behind them and a two-sided exact
    p-value (``p_adjusted``: Holm across a sweep's variants)."""

    diff: float
    events: tuple[int, int]  # variant, baseline
    runs: tuple[int, int]
    p: float
    p_adjusted: float | None = None

    @property
    def significant(self) -> bool:
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p < ALPHA

    def describe(self, digits: int) -> str:
        """``+1.00 (3/3 vs 0/3 runs)``."""
        (a, b), (n, m) = self.events, self.runs
        return f"{self.diff:+.{digits}f} ({a}/{n} vs {b}/{m} runs)"


def rate_test(variant: Sequence[float], baseline: Sequence[float]) -> RateDiff | None:
    """Boschloo's exact test of the share of 1s in ``variant`` against ``baseline`` (one
    0/1 value per run); None when either side has no run."""
    if not variant or not baseline:
        return None
    a, b = round(sum(variant)), round(sum(baseline))
    n, m = len(variant), len(baseline)
    if a in (0, n) and a * m == b * n:  # identical all-or-nothing rates: nothing to test
        p = 1.0
    else:
        p = float(sps.boschloo_exact([[a, b], [n - a, m - b]]).pvalue)
    return RateDiff(a / n - b / m, (a, b), (n, m), min(1.0, p))
