"""How sure a difference between two variants is: variance components over seeds and items.

Every run of a sweep scores the same evaluation items (glmlab/eval/suite.py), and two
variants trained with the same seed share the seed's initialisation and data order (batch
``i`` is a pure function of (seed, i), glmlab/objective/batches.py; the weights are drawn
after ``torch.manual_seed(seed)``, glmlab/assembly/). A metric is a ratio of per-item sums
(:class:`RunItems`), linearised per item so that its mean over items is the run's value.
Its uncertainty has three parts, estimated by a two-way ANOVA of seeds x items:

- the seed part (which runs you happened to train), seen only through the seeds;
- the item part (which passages you happened to score): for a difference, the variant x
  item interaction, which more seeds never average away;
- each run's item-level noise (seed x item).

The variance of a mean over ``n`` seeds and ``m`` items is ``seed / n + item / m +
noise / (n m)``, estimated from the mean squares (the seed means' spread, plus the item
part when its estimate is positive) with Satterthwaite's degrees of freedom (the seed term
entering them at its 70% upper confidence bound: :func:`_satterthwaite`), and read with
Student's t (``scipy.stats.t``).
With 3 seeds and a dominant seed part that is a t with about 2 degrees of freedom (critical
value 4.30, not 1.96): the benchmark ``benchmarks/calibration.py`` measures the level and
coverage this holds. :func:`compare_arms` pairs by seed when both arms have the same seeds
(:data:`PAIRED`), else compares unpaired (:data:`UNPAIRED`, Welch-like); metrics without
per-item scores go through the same path with the item part left out (paired t or
Welch's test). Everything is deterministic: a rebuilt report prints the same numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

__all__ = [
    "ALPHA",
    "PAIRED",
    "SEEDS_PAIRED",
    "SEEDS_WELCH",
    "UNPAIRED",
    "Arm",
    "Components",
    "Diff",
    "Estimate",
    "RunItems",
    "Stats",
    "arm_estimate",
    "compare_arms",
    "summary_stats",
    "t_interval",
]

ALPHA = 0.05  # significance level of every test in a report
# Seed mean squares enter Satterthwaite's df at their 70% upper bound (None: plain
# Satterthwaite, which benchmarks/calibration.py --plain measures).
SEED_GUARD: float | None = 0.3
# How a difference was tested (Diff.method).
PAIRED = "paired by seed and item"
UNPAIRED = "unpaired seeds, paired items"
SEEDS_PAIRED = "paired t over seeds"
SEEDS_WELCH = "Welch's t over seeds"


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
        """Stack one (numerators, denominators) pair per run."""
        return cls(np.stack([n for n, _ in runs]), np.stack([d for _, d in runs]))

    @property
    def n_runs(self) -> int:
        return self.num.shape[0]

    @property
    def n_items(self) -> int:
        return self.num.shape[1]

    def run_values(self) -> np.ndarray:
        """Each run's metric, ``sum(num) / sum(den)``."""
        return self.num.sum(1) / self.den.sum(1)

    def linearised(self) -> np.ndarray:
        """(runs, items) per-item contributions whose mean over items is each run's value
        (the ratio's first-order expansion: value + (num - value * den) / mean den)."""
        values = self.run_values()
        dbar = self.den.mean(1, keepdims=True)
        return values[:, None] + (self.num - values[:, None] * self.den) / dbar

    @property
    def mean(self) -> float:
        return float(self.run_values().mean())


@dataclass(frozen=True)
class Arm:
    """One variant's completed runs of one metric: ``values`` per run, the runs' ``seeds``
    (same order) and, when every run saved them, the per-item scores (``items``)."""

    values: tuple[float, ...]
    seeds: tuple[object, ...] = ()
    items: RunItems | None = None

    def __post_init__(self) -> None:
        if self.seeds and len(self.seeds) != len(self.values):
            raise ValueError(f"Arm: {len(self.values)} values but {len(self.seeds)} seeds")
        if self.items is not None and self.items.n_runs != len(self.values):
            raise ValueError(f"Arm: {len(self.values)} values but {self.items.n_runs} item rows")

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Components:
    """Estimated variance components of a mean or a difference (per seed, per item, per
    seed x item), the items they were measured on and the degrees of freedom per seed:
    what :mod:`glmlab.report.power` projects to other seed counts."""

    seed: float
    item: float
    noise: float
    n_items: int
    seed_df_per_run: float = 1.0  # 1 paired (n - 1 df), 2 unpaired (n_v + n_b - 2 df)

    def variance(self, n: int) -> float:
        """The variance of the estimate with ``n`` seeds per arm and the same items."""
        return self.seed / n + self.item / self.n_items + self.noise / (n * self.n_items)

    def df(self, n: int) -> float:
        """Satterthwaite's degrees of freedom of :meth:`variance` at ``n`` seeds."""
        seed_part = self.seed / n + self.noise / (n * self.n_items)
        item_part = self.item / self.n_items
        total = seed_part + item_part
        if total <= 0.0:
            return math.inf
        seed_df = max(self.seed_df_per_run * (n - 1), 1.0)
        denom = seed_part**2 / seed_df + item_part**2 / max(self.n_items - 1, 1)
        return total**2 / denom if denom > 0 else math.inf


@dataclass(frozen=True)
class Estimate:
    """An estimate with its standard error, degrees of freedom and 95% interval
    (``None`` bounds: too little data for an interval)."""

    estimate: float
    low: float | None = None
    high: float | None = None
    se: float | None = None
    df: float | None = None


@dataclass(frozen=True)
class Diff:
    """Variant minus baseline: estimate, standard error, degrees of freedom, 95% interval,
    two-sided p (``p_adjusted``: after the report's family adjustment), the method, the
    runs per arm, the items, and the variance components (for power)."""

    diff: float
    se: float
    df: float
    low: float
    high: float
    p: float
    method: str
    n_runs: tuple[int, int]
    n_items: int = 0
    components: Components | None = None
    p_adjusted: float | None = None

    @property
    def t(self) -> float:
        return self.diff / self.se if self.se > 0 else math.copysign(math.inf, self.diff)

    @property
    def significant(self) -> bool:
        """Significant at :data:`ALPHA`, after the family adjustment where there is one."""
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p < ALPHA

    def adjusted(self, p: float) -> Diff:
        """A copy with its family-adjusted p."""
        return replace(self, p_adjusted=p)


def t_interval(estimate: float, se: float, df: float) -> tuple[float, float]:
    """The two-sided 95% interval ``estimate ± t(0.975, df) se`` (``scipy.stats.t``)."""
    half = float(sps.t.ppf(1.0 - ALPHA / 2.0, df)) * se if se > 0 else 0.0
    return estimate - half, estimate + half


def _t_p(estimate: float, se: float, df: float) -> float:
    if se <= 0:
        return 0.0 if estimate != 0 else 1.0
    return float(2.0 * sps.t.sf(abs(estimate) / se, df))


@dataclass(frozen=True)
class _Anova:
    """Mean squares of a seeds x items table: seeds, items, residual, and its shape."""

    ms_seed: float
    ms_item: float
    ms_res: float
    n: int
    m: int


def _anova(z: np.ndarray) -> _Anova:
    n, m = z.shape
    grand = z.mean()
    rows, cols = z.mean(1), z.mean(0)
    ms_seed = m * float(((rows - grand) ** 2).sum()) / (n - 1) if n > 1 else 0.0
    ms_item = n * float(((cols - grand) ** 2).sum()) / (m - 1) if m > 1 else 0.0
    resid = z - rows[:, None] - cols[None, :] + grand
    dof = (n - 1) * (m - 1)
    ms_res = float((resid**2).sum()) / dof if dof > 0 else 0.0
    return _Anova(ms_seed, ms_item, ms_res, n, m)


def _satterthwaite(
    terms: Sequence[tuple[float, float]], guarded: Sequence[bool] = ()
) -> tuple[float, float]:
    """(sum of terms, Satterthwaite's df) for ``[(coefficient x mean square, its df)]``.
    A ``guarded`` term (a seed mean square, 2-4 df) enters the df at its one-sided 70%
    upper confidence bound, ``term (df) / chi2(0.3; df)``: with so few degrees of freedom
    a seed spread that came out small by chance would otherwise buy degrees of freedom it
    does not have (Welch's test is liberal when one sample is tiny). The sum itself is
    unbiased; the level this holds is measured by benchmarks/calibration.py."""
    total = sum(t for t, _ in terms)
    flags = list(guarded) + [False] * (len(terms) - len(guarded))
    guard = SEED_GUARD
    for_df = [
        (t * d / float(sps.chi2.ppf(guard, d)) if g and d > 0 and guard else t, d)
        for (t, d), g in zip(terms, flags, strict=True)
    ]
    df_total = sum(t for t, _ in for_df)
    denom = sum(t * t / d for t, d in for_df if d > 0 and t != 0.0)
    return total, (df_total * df_total / denom if denom > 0 else math.inf)


def _crossed(a: _Anova) -> tuple[float, float, Components]:
    """Variance and df of the grand mean of a crossed seeds x items table (n >= 2):
    ``ms_seed / (n m)`` (the seed means' spread, as a t over seeds) plus the item part
    ``(ms_item - ms_res) / (n m)`` when it is positive. The seed term is never dropped:
    a seed spread that came out small by chance keeps its few degrees of freedom."""
    n, m = a.n, a.m
    terms = [(a.ms_seed, n - 1.0)]
    item_c = max(0.0, (a.ms_item - a.ms_res) / n)
    if item_c > 0:
        terms += [(a.ms_item, m - 1.0), (-a.ms_res, (n - 1.0) * (m - 1.0))]
    total, df = _satterthwaite([(t / (n * m), d) for t, d in terms], [True])
    df = max(df, n - 1.0)  # never fewer than the seeds give (a near-cancelled item part)
    seed_c = max(0.0, (a.ms_seed - a.ms_res) / m)
    return total, df, Components(seed_c, item_c, a.ms_res, m)


def arm_estimate(arm: Arm) -> Estimate | None:
    """The arm's mean over runs with its 95% interval: over seeds and items when the runs
    saved per-item scores, else a t interval over seeds; no interval from one run (its
    seed part is unknown). None without runs."""
    if arm.n == 0:
        return None
    mean = statistics.fmean(arm.values)
    if arm.n < 2:
        return Estimate(mean)
    if arm.items is None or arm.items.n_items < 2:
        s = summary_stats(arm.values)
        se = s.std / math.sqrt(s.n)
        return Estimate(mean, *s.ci, se=se, df=s.n - 1)
    var, df, _ = _crossed(_anova(arm.items.linearised()))
    se = math.sqrt(var)
    return Estimate(mean, *t_interval(mean, se, df), se=se, df=df)


def _paired_order(variant: Arm, baseline: Arm) -> tuple[list[int], list[int]] | None:
    """Row orders that line both arms up by seed, or None when their seeds differ."""
    if not variant.seeds or not baseline.seeds or variant.n != baseline.n:
        return None
    keys = [str(s) for s in variant.seeds]
    other = [str(s) for s in baseline.seeds]
    if len(set(keys)) != len(keys) or set(keys) != set(other):
        return None
    return list(range(len(keys))), [other.index(k) for k in keys]


def compare_arms(variant: Arm, baseline: Arm) -> Diff | None:
    """Variant mean minus baseline mean (see the module docstring), or None when either
    arm has fewer than 2 runs or the runs do not vary at all."""
    if variant.n < 2 or baseline.n < 2:
        return None
    diff = statistics.fmean(variant.values) - statistics.fmean(baseline.values)
    order = _paired_order(variant, baseline)
    items = variant.items is not None and baseline.items is not None
    if items and variant.items.n_items != baseline.items.n_items:
        raise ValueError(
            f"paired comparison needs the same items: {variant.items.n_items} vs "
            f"{baseline.items.n_items}"
        )
    items = items and variant.items.n_items >= 2
    if order is not None and items:
        zv = variant.items.linearised()[order[0]]
        zb = baseline.items.linearised()[order[1]]
        var, df, comp = _crossed(_anova(zv - zb))
        method = PAIRED
    elif order is not None:
        d = np.asarray(variant.values)[order[0]] - np.asarray(baseline.values)[order[1]]
        var, df = float(d.var(ddof=1)) / len(d), len(d) - 1.0
        comp = Components(float(d.var(ddof=1)), 0.0, 0.0, 1)
        method = SEEDS_PAIRED
    elif items:
        var, df, comp = _unpaired_items(variant.items, baseline.items)
        method = UNPAIRED
    else:
        sv, sb = statistics.variance(variant.values), statistics.variance(baseline.values)
        var, df = _satterthwaite(
            [(sv / variant.n, variant.n - 1), (sb / baseline.n, baseline.n - 1)]
        )
        comp = Components(sv + sb, 0.0, 0.0, 1, seed_df_per_run=2.0)
        method = SEEDS_WELCH
    if not var > 0.0:
        return None
    se = math.sqrt(var)
    low, high = t_interval(diff, se, df)
    n_items = variant.items.n_items if items else 0
    return Diff(
        diff, se, df, low, high, _t_p(diff, se, df), method, (variant.n, baseline.n), n_items, comp
    )


def _unpaired_items(v: RunItems, b: RunItems) -> tuple[float, float, Components]:
    """Variance and df of mean(v) - mean(b) on shared items with unpaired seeds: each
    arm's seed part from its run values, the variant x item part from the per-item
    differences of the arms' means less their item noise."""
    zv, zb = v.linearised(), b.linearised()
    av, ab = _anova(zv), _anova(zb)
    nv, nb, m = v.n_runs, b.n_runs, v.n_items
    e = zv.mean(0) - zb.mean(0)
    ms_e = float(e.var(ddof=1))
    item_c = max(0.0, ms_e - av.ms_res / nv - ab.ms_res / nb)
    terms = [(av.ms_seed / (nv * m), nv - 1.0), (ab.ms_seed / (nb * m), nb - 1.0)]
    if item_c > 0:
        terms += [
            (ms_e / m, m - 1.0),
            (-av.ms_res / (nv * m), (nv - 1.0) * (m - 1)),
            (-ab.ms_res / (nb * m), (nb - 1.0) * (m - 1)),
        ]
    total, df = _satterthwaite(terms, [True, True])
    df = max(df, min(nv, nb) - 1.0)
    seed_c = max(0.0, (av.ms_seed - av.ms_res) / m) + max(0.0, (ab.ms_seed - ab.ms_res) / m)
    comp = Components(seed_c, item_c, av.ms_res + ab.ms_res, m, seed_df_per_run=2.0)
    return total, df, comp


# -- over seeds only ---------------------------------------------------------------------


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
    ci = t_interval(mean, std / math.sqrt(len(values)), len(values) - 1)
    return Stats(len(values), mean, std, ci)
