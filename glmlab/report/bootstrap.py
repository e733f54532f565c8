"""The previous statistics of sweep reports (paired hierarchical bootstrap, Holm, Welch),
kept until the report reads glmlab/report/stats.py (the next commit removes this module).

Every run of a sweep scores the same evaluation items (glmlab/eval/suite.py), so two
variants are compared *paired by item*, and the uncertainty covers both sources of noise:
the seeds (which run you happened to train) and the items (which passages you happened
to score). :func:`paired_bootstrap` is a hierarchical bootstrap over both; with several
variants against one baseline, :func:`holm` corrects the p-values for multiple
comparisons. Metrics without per-item scores (the validation loss, old run directories)
fall back to Welch's t-test over seeds (:func:`welch_test`). Distributions and tests come from
scipy.stats; nothing here evaluates a special function by hand.

A metric is a ratio of per-item sums, ``sum(num) / sum(den)`` over a run's items (an
infilling loss: summed negative log-likelihood over scored tokens; cloze accuracy: credit
over items); :class:`RunItems` holds one array pair per run.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

ALPHA = 0.05  # significance level of every test in a report
N_BOOT = 4000  # bootstrap replicates: the Monte Carlo error of a 95% bound is ~0.3%
BOOT_SEED = 20240605  # fixed: a report rebuilt from the same runs prints the same numbers


@dataclass(frozen=True)
class RunItems:
    """Per-item numerators and denominators of one metric, one row per run (seed):
    ``num`` and ``den`` are (runs, items); every run holds the same items in order."""

    num: np.ndarray
    den: np.ndarray

    def __post_init__(self) -> None:
        if self.num.shape != self.den.shape or self.num.ndim != 2 or self.num.shape[0] < 1:
            raise ValueError(
                f"RunItems wants two (runs, items) arrays of one shape, got "
                f"{self.num.shape} and {self.den.shape}"
            )

    @classmethod
    def from_runs(cls, runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> RunItems:
        return cls(np.stack([n for n, _ in runs]), np.stack([d for _, d in runs]))

    @property
    def n_runs(self) -> int:
        return self.num.shape[0]

    @property
    def n_items(self) -> int:
        return self.num.shape[1]

    def run_values(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Each run's metric; with ``weights`` (replicates, items) of item multiplicities,
        (replicates, runs) of the metric on each resampled item set."""
        if weights is None:
            return self.num.sum(1) / self.den.sum(1)
        return (weights @ self.num.T) / np.maximum(weights @ self.den.T, 1e-300)

    @property
    def mean(self) -> float:
        return float(self.run_values().mean())


@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap 95% interval (``None`` bounds: too little data)."""

    estimate: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairedDiff:
    """Variant minus baseline on the same items: estimate, 95% interval, two-sided
    bootstrap p-value (``p_adjusted``: after :func:`holm` across a sweep's variants)."""

    diff: float
    low: float
    high: float
    p: float
    n_runs: tuple[int, int]
    n_items: int
    p_adjusted: float | None = None

    @property
    def significant(self) -> bool:
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p < ALPHA


def seed_scale(runs: RunItems) -> float:
    """How much to scale a seed resample's deviations so that the bootstrap's seed part
    has the seed variance alone. Items are crossed with seeds (every run scores every
    item), so the spread of the run values holds the seed effect *and* each run's item
    noise, which the item resample already counts: the seed component is the run values'
    variance less the two-way residual variance over the number of items (ANOVA, floored
    at 0). A plain resample of n values has (n - 1) / n of their variance: undone too."""
    n, m = runs.num.shape
    if n < 2:
        return 0.0
    values = runs.run_values()
    # Linearise the ratio: per-item contributions whose mean over items is the run value.
    dbar = runs.den.mean(1, keepdims=True)
    z = values[:, None] + (runs.num - values[:, None] * runs.den) / dbar
    v_run = float(values.var(ddof=1))
    if v_run == 0.0:
        return 0.0
    resid = z - z.mean(1, keepdims=True) - z.mean(0, keepdims=True) + z.mean()
    v_res = float((resid**2).sum() / ((n - 1) * max(m - 1, 1))) if m > 1 else 0.0
    v_seed = max(0.0, v_run - v_res / m)
    return math.sqrt(n / (n - 1) * v_seed / v_run)


def _seed_means(values: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Per replicate (row of ``values``: replicates x runs), the all-run mean plus a
    resample of the runs (seeds) whose deviation is scaled by :func:`seed_scale`."""
    n_boot, n = values.shape
    everyone = values.mean(1)
    if n == 1:
        return everyone
    pick = rng.integers(0, n, size=(n_boot, n))
    resampled = np.take_along_axis(values, pick, axis=1).mean(1)
    return everyone + scale * (resampled - everyone)


def _item_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_items) multiplicities of a resample of the items with replacement."""
    return rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot).astype(np.float64)


def bootstrap_mean(runs: RunItems, *, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> Interval:
    """The mean over runs of a metric with a 95% percentile interval from a hierarchical
    bootstrap: resample the seeds, then the items."""
    if runs.n_runs < 2 and runs.n_items < 2:
        return Interval(runs.mean, None, None)
    rng = np.random.default_rng(seed)
    weights = _item_weights(runs.n_items, n_boot, rng)
    reps = _seed_means(runs.run_values(weights), seed_scale(runs), rng)
    low, high = np.quantile(reps, [ALPHA / 2, 1 - ALPHA / 2])
    return Interval(runs.mean, float(low), float(high))


def paired_bootstrap(
    variant: RunItems, baseline: RunItems, *, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> PairedDiff:
    """Variant mean minus baseline mean, paired by item. Each replicate resamples each
    side's seeds (independently: seeds are not shared between variants) and one resample
    of the items that both sides use (the pairing: an item that is hard for one variant
    is hard for the other). 95% percentile interval; two-sided p = twice the smaller
    share of replicates on either side of zero (at least 1 / (n_boot + 1))."""
    if variant.n_items != baseline.n_items:
        raise ValueError(
            f"paired comparison needs the same items: {variant.n_items} vs {baseline.n_items}"
        )
    rng = np.random.default_rng(seed)
    weights = _item_weights(variant.n_items, n_boot, rng)
    reps = _seed_means(variant.run_values(weights), seed_scale(variant), rng) - _seed_means(
        baseline.run_values(weights), seed_scale(baseline), rng
    )
    low, high = np.quantile(reps, [ALPHA / 2, 1 - ALPHA / 2])
    below = (np.count_nonzero(reps <= 0) + 1) / (n_boot + 1)
    above = (np.count_nonzero(reps >= 0) + 1) / (n_boot + 1)
    return PairedDiff(
        diff=variant.mean - baseline.mean,
        low=float(low),
        high=float(high),
        p=min(1.0, 2.0 * min(below, above)),
        n_runs=(variant.n_runs, baseline.n_runs),
        n_items=variant.n_items,
    )


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (controls the family-wise error rate)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# -- over seeds only: metrics without per-item scores ----------------------------------


@dataclass(frozen=True)
class Stats:
    """Mean, sample standard deviation and the t-based 95% CI of the mean (n >= 2)."""

    n: int
    mean: float
    std: float | None
    ci: tuple[float, float] | None


def summary_stats(values: Sequence[float]) -> Stats | None:
    """:class:`Stats` of ``values``; None when there are none."""
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Stats(1, mean, None, None)
    std = statistics.stdev(values)
    half = float(sps.t.ppf(1.0 - ALPHA / 2.0, len(values) - 1)) * std / math.sqrt(len(values))
    return Stats(len(values), mean, std, (mean - half, mean + half))


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of mean(a) - mean(b): difference, its standard
    error, t, Welch-Satterthwaite degrees of freedom, two-sided p (``p_adjusted``: Holm)."""

    diff: float
    se: float
    t: float
    df: float
    p: float
    p_adjusted: float | None = None

    @property
    def significant(self) -> bool:
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p < ALPHA


def welch_test(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's test of ``a`` against ``b`` (``scipy.stats.ttest_ind(equal_var=False)``);
    None when either sample has fewer than 2 values or both have zero variance."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0.0:
        return None
    with warnings.catch_warnings():
        # scipy flags a constant sample ("precision loss"); the other sample's variance
        # carries the test, and its statistic and p are exact.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        test = sps.ttest_ind(a, b, equal_var=False)
    diff = statistics.fmean(a) - statistics.fmean(b)
    return Welch(
        diff, math.sqrt(va + vb), float(test.statistic), float(test.df), float(test.pvalue)
    )
