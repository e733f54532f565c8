"""Failures count: how many runs of an arm completed, diverged or are missing, the
divergence rate with its exact interval, and a test of whether two arms differ in it.

A diverged run is a result (the recipe is unstable at that seed), so it enters the
divergence rate; a failed or unfinished run says nothing about the recipe and is counted
as missing ("judged on k of n seeds"). The rate's 95% interval is Clopper-Pearson's
(``statsmodels.stats.proportion.proportion_confint``, ``method="beta"``); two arms are
compared by Boschloo's exact test (glmlab/report/rates.py's ``rate_test``), which joins the
report's family only when its smallest attainable p-value (every run of one arm diverged,
none of the other) could be significant at the family's Bonferroni level (Tarone 1990):
with 3 runs per arm that smallest p is 0.031.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from statsmodels.stats.proportion import proportion_confint

from glmlab.report.rates import rate_test
from glmlab.runs.layout import RunStatus

__all__ = ["RunCount", "Stability", "count_runs", "divergence_interval", "stability_test"]


@dataclass(frozen=True)
class RunCount:
    """An arm's runs: all of them, the completed and the diverged ones (the rest failed
    or did not finish), and the seeds of the completed ones."""

    total: int
    completed: int
    diverged: int

    @property
    def missing(self) -> int:
        return self.total - self.completed - self.diverged

    @property
    def ended(self) -> int:
        """Runs that say something about stability: completed or diverged."""
        return self.completed + self.diverged

    def __add__(self, other: RunCount) -> RunCount:
        return RunCount(
            self.total + other.total,
            self.completed + other.completed,
            self.diverged + other.diverged,
        )

    def phrase(self) -> str:
        """``2 of 3 seeds (1 diverged)``: what a comparison is judged on."""
        notes = []
        if self.diverged:
            notes.append(f"{self.diverged} diverged")
        if self.missing:
            notes.append(f"{self.missing} failed or unfinished")
        return f"{self.completed} of {self.total} seeds" + (
            f" ({', '.join(notes)})" if notes else ""
        )


def count_runs(statuses: Iterable[str]) -> RunCount:
    """A :class:`RunCount` of run statuses (``result.json``'s ``status``)."""
    statuses = list(statuses)
    return RunCount(
        len(statuses),
        sum(s == RunStatus.COMPLETED for s in statuses),
        sum(s == RunStatus.DIVERGED for s in statuses),
    )


def divergence_interval(count: RunCount) -> tuple[float, float] | None:
    """Clopper-Pearson 95% interval of the divergence rate (None: no run ended)."""
    if count.ended == 0:
        return None
    low, high = proportion_confint(count.diverged, count.ended, alpha=0.05, method="beta")
    return float(low), float(high)


@dataclass(frozen=True)
class Stability:
    """Two arms' divergence: their counts, Boschloo's two-sided p (None: no run ended in
    one arm) and the smallest p their sizes allow."""

    variant: RunCount
    baseline: RunCount
    p: float | None
    min_p: float | None

    @property
    def differs(self) -> bool:
        """Whether the arms' divergence counts differ at all (a described difference,
        not a tested one: the call needs the family's adjusted p)."""
        return self.variant.diverged * self.baseline.ended != (
            self.baseline.diverged * self.variant.ended
        )

    def phrase(self) -> str:
        """``diverged 1 of 3 [0.8%, 91%] vs baseline 0 of 3 [0%, 71%]``."""

        def one(c: RunCount) -> str:
            iv = divergence_interval(c)
            ci = f" [{iv[0]:.0%}, {iv[1]:.0%}]" if iv else ""
            return f"{c.diverged} of {c.ended}{ci}"

        return f"diverged {one(self.variant)} vs baseline {one(self.baseline)}"


def _boschloo(a: int, n_a: int, b: int, n_b: int) -> float:
    """Boschloo's two-sided p for a of n_a against b of n_b (the report's one rate test)."""
    test = rate_test([1.0] * a + [0.0] * (n_a - a), [1.0] * b + [0.0] * (n_b - b))
    return test.p if test is not None else 1.0


def stability_test(variant: RunCount, baseline: RunCount) -> Stability:
    """Boschloo's exact test of equal divergence rates between the arms' ended runs."""
    if variant.ended == 0 or baseline.ended == 0:
        return Stability(variant, baseline, None, None)
    p = _boschloo(variant.diverged, variant.ended, baseline.diverged, baseline.ended)
    min_p = _boschloo(variant.ended, variant.ended, 0, baseline.ended)
    return Stability(variant, baseline, min(1.0, p), min_p)
