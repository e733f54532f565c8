"""What a difference can and cannot show: equivalence against a margin, the minimum
detectable effect, the seeds a stated effect needs, the gap pooled over a ladder's rungs
and its trend with compute, and how close a call sits to its threshold.

Every function reads a :class:`~glmlab.report.stats.Diff` (estimate, standard error,
Satterthwaite degrees of freedom, variance components) and uses Student's t and the
noncentral t of ``scipy.stats``; none evaluates a distribution by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy import stats as sps

from glmlab.report.stats import ALPHA, Components, Diff, t_interval

__all__ = [
    "FRAGILE_Z",
    "POWER",
    "Contrast",
    "fragile",
    "mde",
    "pooled",
    "power_at",
    "seeds_needed",
    "tost_p",
    "trend",
]

POWER = 0.8  # the power a minimum detectable effect and a seed count are quoted at
# A call is fragile when its statistic sits within this many standard errors of the
# threshold: reruns of the same command on other machines moved a ladder rung's
# difference by 0.58 standard errors (p 0.014 -> 0.06, issue #29) and thread counts
# change a run's numbers (docs/REPORTS.md, "Reproducibility").
FRAGILE_Z = 0.6
MAX_SEEDS = 1000


def tost_p(d: Diff, margin: float) -> float:
    """Two one-sided tests of ``|true difference| < margin``: the larger of the two
    one-sided p-values (small: the difference is within ±margin)."""
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be > 0, got {margin}")
    if d.se <= 0:
        return 0.0 if abs(d.diff) < margin else 1.0
    lower = float(sps.t.sf((d.diff + margin) / d.se, d.df))
    upper = float(sps.t.cdf((d.diff - margin) / d.se, d.df))
    return max(lower, upper)


def power_at(effect: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """The power of a two-sided t test at level ``alpha`` to detect ``effect`` when the
    estimate has standard error ``se`` and ``df`` degrees of freedom (noncentral t)."""
    if se <= 0:
        return 1.0
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    nc = abs(effect) / se
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
    if math.isfinite(power):
        return power
    # scipy's noncentral t fails far in its tail: integrate over the chi-square instead.
    if not math.isfinite(df):
        return float(sps.norm.sf(crit - nc) + sps.norm.cdf(-crit - nc))

    def given(v: float) -> float:
        c = crit * math.sqrt(v / df)
        return float(sps.norm.sf(c - nc) + sps.norm.cdf(-c - nc)) * float(sps.chi2.pdf(v, df))

    return float(integrate.quad(given, 0.0, math.inf)[0])


def mde(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided test at ``alpha`` detects with ``power``."""
    if se <= 0:
        return 0.0
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    hi = se * (crit + 10.0)
    while power_at(hi, se, df, alpha) < power:  # a t with 1-2 df has heavy tails
        if hi > se * 1e6:
            return math.inf
        hi *= 2.0
    return float(optimize.brentq(lambda e: power_at(e, se, df, alpha) - power, 0.0, hi))


def seeds_needed(
    comps: Components | Sequence[Components],
    effect: float,
    alpha: float = ALPHA,
    power: float = POWER,
) -> int | None:
    """The fewest seeds per arm that detect ``effect`` with ``power`` at ``alpha`` on the
    same items, from the measured variance components (several: the gap averaged over
    rungs, each rung with its components); None when no seed count up to 1000 reaches it
    (the item part alone is too large: more items are needed)."""
    comps = [comps] if isinstance(comps, Components) else list(comps)
    if effect == 0 or not comps:
        return None
    k = len(comps)
    for n in range(2, MAX_SEEDS + 1):
        parts = [c.variance(n) / k**2 for c in comps]
        var = sum(parts)
        denom = sum(p * p / c.df(n) for p, c in zip(parts, comps, strict=True))
        df = var * var / denom if denom > 0 else math.inf
        if power_at(effect, math.sqrt(var), df, alpha) >= power:
            return n
    return None


@dataclass(frozen=True)
class Contrast:
    """A linear combination of independent rung differences: estimate, standard error,
    Satterthwaite df, 95% interval and two-sided p."""

    estimate: float
    se: float
    df: float
    low: float
    high: float
    p: float


def _contrast(weights: Sequence[float], diffs: Sequence[Diff]) -> Contrast:
    est = float(sum(w * d.diff for w, d in zip(weights, diffs, strict=True)))
    parts = [(w * d.se) ** 2 for w, d in zip(weights, diffs, strict=True)]
    var = sum(parts)
    denom = sum(p * p / d.df for p, d in zip(parts, diffs, strict=True) if math.isfinite(d.df))
    df = var * var / denom if denom > 0 else math.inf
    se = math.sqrt(var)
    low, high = t_interval(est, se, df)
    p = float(2.0 * sps.t.sf(abs(est) / se, df)) if se > 0 else float(est == 0)
    return Contrast(est, se, df, low, high, p)


def pooled(diffs: Sequence[Diff]) -> Contrast:
    """The gap averaged over rungs (each rung weighs the same: rungs are chosen sizes,
    not a sample of sizes), with its Satterthwaite t test."""
    if not diffs:
        raise ValueError("pooled: no rung differences")
    return _contrast([1.0 / len(diffs)] * len(diffs), diffs)


def trend(diffs: Sequence[Diff], compute: Sequence[float]) -> Contrast | None:
    """The least-squares slope of the rung gaps against log10 training compute (the gap's
    change per decade of compute) with its t test; None with fewer than 2 sizes."""
    x = np.log10(np.asarray(compute, dtype=float))
    if len(diffs) < 2 or np.ptp(x) == 0:
        return None
    centred = x - x.mean()
    return _contrast(list(centred / float((centred**2).sum())), diffs)


def fragile(p: float, alpha: float = ALPHA, z: float = FRAGILE_Z) -> bool:
    """Whether a call at ``alpha`` would flip if its statistic moved by ``z`` standard
    errors (on the normal scale of the two-sided p): p within (p(+z), p(-z)) of alpha."""
    if not 0.0 < p <= 1.0:
        return False
    crit = float(sps.norm.isf(alpha / 2.0))
    at = float(sps.norm.isf(p / 2.0))
    return abs(at - crit) < z
