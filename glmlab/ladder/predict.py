"""Predictions from a ladder's fits, with intervals, and which fit the points support.

- :class:`Estimate`: a value with its standard error and degrees of freedom; its 95%
  interval is a t interval (``scipy.stats.t``). Predictions propagate the fit's parameter
  covariance by the delta method (:func:`delta`) and, for a value still to be *measured*
  (a held-out rung's mean of k seeds), add the runs' own noise ``sigma^2 / k``: a
  prediction interval, which the held-out measurement falls in at the stated rate when the
  fitted form is right (benchmarks/ladder_prediction.py measures the rate).
- :func:`select_fit`: the form the points support. ``auto`` tries E per variant, then E
  shared by the variants, then a pure power law, and keeps the first the points determine
  (glmlab/ladder/fit.py: residual degrees of freedom, bounds, intervals) and whose seed
  resamples refit inside the bounds (:func:`refit_seeds`: refits that fail or hit a bound
  are counted and reported, never pooled silently); none: no fit. A mode the ladder names
  is used as named, and the report says what the points support instead.
- :func:`multiplier`: the effect as a compute-equivalent multiplier k: the variant at C
  matches the baseline at k x C.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import optimize
from scipy import stats as sps

from glmlab.ladder.fit import MIN_RESIDUAL_DF, MODES, FitResult, fit_power_laws, n_params

__all__ = [
    "AUTO_ORDER",
    "Estimate",
    "Predictor",
    "Refits",
    "Selection",
    "delta",
    "gap_estimate",
    "multiplier",
    "refit_seeds",
    "select_fit",
    "value_estimate",
]

AUTO_ORDER = ("own_e", "shared_e", "log")  # richest form first
MAX_LOOSE_REFITS = 0.025  # share of refits past a bound a determined fit tolerates


class Predictor(Protocol):
    """What the predictions need of a fit: parameters, their covariance, the residual df,
    a value for any parameter vector, and one run's noise variance."""

    theta: np.ndarray
    cov: np.ndarray
    df: int

    def value(self, theta: np.ndarray, variant: str, compute: float) -> float: ...

    def run_var(self, variant: str, compute: float) -> float: ...


@dataclass(frozen=True)
class Estimate:
    """``value`` with standard error ``se`` on ``df`` degrees of freedom."""

    value: float
    se: float
    df: float

    @property
    def half(self) -> float:
        """Half-width of the 95% t interval (inf without degrees of freedom)."""
        if not (self.df > 0 and math.isfinite(self.se)):
            return math.inf
        return float(sps.t.ppf(0.975, self.df)) * self.se

    @property
    def low(self) -> float:
        return self.value - self.half

    @property
    def high(self) -> float:
        return self.value + self.half

    def covers(self, x: float) -> bool:
        """Whether ``x`` lies in the 95% interval."""
        return self.low <= x <= self.high

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def delta(fn: Callable[[np.ndarray], float], theta: np.ndarray, cov: np.ndarray) -> float:
    """The delta-method variance of ``fn(theta)``: central differences for the gradient."""
    if theta.size == 0 or not np.all(np.isfinite(cov)):
        return math.inf
    grad = np.zeros_like(theta)
    for i in range(theta.size):
        h = 1e-6 * max(1.0, abs(float(theta[i])))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (fn(up) - fn(down)) / (2 * h)
    return float(max(grad @ cov @ grad, 0.0))


def value_estimate(
    pred: Predictor, variant: str, compute: float, *, runs: int | None = None
) -> Estimate:
    """The fitted value of ``variant`` at ``compute``; with ``runs``, the prediction of the
    mean of that many runs still to be measured (their noise added)."""
    var = delta(lambda t: pred.value(t, variant, compute), pred.theta, pred.cov)
    if runs:
        var += pred.run_var(variant, compute) / runs
    return Estimate(pred.value(pred.theta, variant, compute), math.sqrt(var), pred.df)


def gap_estimate(
    pred: Predictor,
    variant: str,
    baseline: str,
    compute: float | tuple[float, float],
    *,
    runs: tuple[int, int] | None = None,
) -> Estimate:
    """The fitted gap (variant - baseline) at ``compute`` (one value, or one per arm: each
    arm's measured C); with ``runs`` (variant's, baseline's), the prediction of the gap
    between means still to be measured."""
    cv, cb = compute if isinstance(compute, tuple) else (compute, compute)

    def gap(t: np.ndarray) -> float:
        return pred.value(t, variant, cv) - pred.value(t, baseline, cb)

    var = delta(gap, pred.theta, pred.cov)
    if runs:
        var += pred.run_var(variant, cv) / runs[0] + pred.run_var(baseline, cb) / runs[1]
    return Estimate(gap(pred.theta), math.sqrt(var), pred.df)


def multiplier(pred: Predictor, variant: str, baseline: str, compute: float) -> Estimate | None:
    """k with the variant at ``compute`` equal to the baseline at ``k x compute`` (fitted
    curves); the estimate is of log k, so its interval is ``exp`` of the t interval. None
    when the baseline's curve never reaches the variant's value within 10^6 x either way."""

    def log_k(t: np.ndarray) -> float:
        target = pred.value(t, variant, compute)

        def diff(logc: float) -> float:
            return pred.value(t, baseline, math.exp(logc)) - target

        lo, hi = math.log(compute) - 14.0, math.log(compute) + 14.0
        if diff(lo) * diff(hi) > 0:
            return math.nan
        return optimize.brentq(diff, lo, hi, xtol=1e-10) - math.log(compute)

    value = log_k(pred.theta)
    if not math.isfinite(value):
        return None
    var = delta(log_k, pred.theta, pred.cov)
    return Estimate(value, math.sqrt(var) if math.isfinite(var) else math.inf, pred.df)


Cells = Mapping[str, Mapping[float, Sequence[float]]]  # variant -> compute -> seed values


def _points(cells: Cells) -> dict[str, list[tuple[float, float]]]:
    return {v: [(c, y) for c, ys in byc.items() for y in ys] for v, byc in cells.items()}


@dataclass(frozen=True)
class Refits:
    """Seed-resample refits of one fit: how many there were, failed, or hit a bound."""

    n: int
    failed: int = 0
    at_bound: int = 0

    @property
    def loose(self) -> bool:
        """More refits failed or hit a bound than a 95% interval inside the bounds allows."""
        return self.n > 0 and (self.failed + self.at_bound) > MAX_LOOSE_REFITS * self.n

    def text(self) -> str:
        if not self.n:
            return "no seed resamples refitted"
        return (
            f"{self.failed + self.at_bound} of {self.n} seed-resample refits failed or hit a "
            f"bound ({self.failed} failed, {self.at_bound} at a bound)"
        )


def refit_seeds(
    cells: Cells, mode: str, *, n: int, flip: bool = False, seed: int = 20240605
) -> Refits:
    """Resample each (variant, compute) cell's seed values with replacement ``n`` times and
    refit: how many refits fail or put a parameter at its bound."""
    rng = np.random.default_rng(seed)
    failed = at_bound = 0
    for _ in range(n):
        resampled = {
            v: {c: list(rng.choice(np.asarray(ys), size=len(ys))) for c, ys in byc.items() if ys}
            for v, byc in cells.items()
        }
        try:
            fit = fit_power_laws(_points(resampled), mode, flip=flip)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            failed += 1
            continue
        if not fit.curves:
            failed += 1
        elif fit.at_bound:
            at_bound += 1
    return Refits(n, failed, at_bound)


@dataclass
class Selection:
    """The fit a metric's predictions use, and what the points support."""

    fit: FitResult | None  # None: no form is determined (auto), nothing is extrapolated
    asked: str  # the ladder's ``fit`` setting
    refits: Refits = field(default_factory=lambda: Refits(0))
    tried: dict[str, str] = field(default_factory=dict)  # mode -> why not (auto)
    supported: str | None = None  # a named mode not determined: the form the points support

    @property
    def determined(self) -> bool:
        return self.fit is not None and self.fit.determined and not self.refits.loose

    def why_not(self) -> str:
        """Why the fit used is not determined ('' when it is)."""
        if self.fit is None:
            return "; ".join(f"{m}: {why}" for m, why in self.tried.items())
        notes = [self.fit.note] if self.fit.note else []
        if self.refits.loose:
            notes.append(self.refits.text())
        return "; ".join(notes)


def _judge(cells: Cells, mode: str, *, flip: bool, n_boot: int) -> tuple[FitResult, Refits]:
    fit = fit_power_laws(_points(cells), mode, flip=flip)
    refits = Refits(0)
    if fit.determined and n_boot > 0:
        refits = refit_seeds(cells, mode, n=n_boot, flip=flip)
    return fit, refits


def select_fit(cells: Cells, mode: str, *, flip: bool = False, n_boot: int = 0) -> Selection:
    """The fit of ``cells`` in ``mode`` (``auto``: the richest determined form,
    :data:`AUTO_ORDER`), with its refit counts (``n_boot`` seed resamples)."""
    if mode != "auto" and mode not in MODES:
        raise ValueError(f"fit mode {mode!r}: must be auto or one of {', '.join(MODES)}")
    if not any(ys for byc in cells.values() for ys in byc.values()):
        return Selection(None, mode, tried={"any": "no completed seed runs"})
    if mode != "auto":
        fit, refits = _judge(cells, mode, flip=flip, n_boot=n_boot)
        out = Selection(fit, mode, refits)
        if not out.determined:
            support = select_fit(cells, "auto", flip=flip, n_boot=n_boot)
            out.supported = support.fit.mode if support.fit is not None else "none"
        return out
    tried: dict[str, str] = {}
    n_cells = sum(1 for byc in cells.values() for ys in byc.values() if ys)
    n_variants = sum(1 for byc in cells.values() if any(byc.values()))
    for m in AUTO_ORDER:
        if n_cells - n_params(m, n_variants) < MIN_RESIDUAL_DF:  # not determined: skip the fit
            tried[m] = (
                f"{n_cells} (variant, compute) points for {n_params(m, n_variants)} parameters "
                f"leave fewer than {MIN_RESIDUAL_DF} residual degrees of freedom"
            )
            continue
        fit, refits = _judge(cells, m, flip=flip, n_boot=n_boot)
        sel = Selection(fit, mode, refits, tried)
        if sel.determined:
            return sel
        tried[m] = sel.why_not() or "no fit"
    return Selection(None, mode, tried=tried)
