"""Saturating power laws of a metric against training compute (docs/LADDERS.md): each
variant's ``y = E + A * C^-alpha`` (Kaplan et al. 2020; Hoffmann et al. 2022) fitted with
:func:`scipy.optimize.least_squares`, in one of three modes:

- ``shared_e``: one irreducible level E for all variants of the sweep, A and alpha per
  variant;
- ``own_e``: E, A and alpha per variant;
- ``log``: a pure power law ``log y = log A - alpha log C`` without E.

Metrics where higher is better and that live in [0, 1] (accuracies) may be fitted as their
error rate ``1 - y`` and reported back in their own terms. Every fit carries what its
intervals need: the parameters' covariance from the Jacobian at the optimum and the residual
variance (glmlab/ladder/predict.py turns them into t intervals). A fit is **determined by
the points** only with at least :data:`MIN_RESIDUAL_DF` residual degrees of freedom over
the (variant, compute) cells, no parameter at a bound, a non-singular Jacobian and 95%
intervals of E and alpha inside their bounds; otherwise its note says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy import stats as sps

__all__ = [
    "ALPHA_BOUNDS",
    "MIN_RESIDUAL_DF",
    "MODES",
    "Curve",
    "FitResult",
    "fit_power_laws",
    "n_params",
]

ALPHA_BOUNDS = (1e-3, 4.0)
MODES = ("shared_e", "own_e", "log")
MIN_RESIDUAL_DF = 2  # (variant, compute) cells minus parameters a determined fit needs


@dataclass(frozen=True)
class Curve:
    """``y = E + A * C^-alpha`` on the fitted (loss-like) scale; C in FLOPs."""

    E: float
    A: float
    alpha: float

    def __call__(self, compute: float | np.ndarray) -> float | np.ndarray:
        return self.E + self.A * np.power(compute, -self.alpha)


@dataclass
class FitResult:
    """The fitted curves per variant, whether the points determine them, and what the
    intervals need: the parameter vector ``theta`` (per variant E, log A at ``c0``, alpha),
    its covariance ``cov`` and the residual variance ``sigma2`` with ``df`` degrees of
    freedom, on the residual scale (y, or log y in ``log`` mode)."""

    mode: str
    curves: dict[str, Curve]
    determined: bool
    note: str = ""  # why not determined (empty when it is)
    flip: bool = False  # fitted as 1 - y (an accuracy)
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sigma2: float = math.nan
    df: int = 0  # residual degrees of freedom of sigma2
    cells: int = 0  # distinct (variant, compute) points
    c0: float = 1.0  # compute scale: A is fitted at C / c0
    names: list[str] = field(default_factory=list)
    at_bound: list[int] = field(default_factory=list)  # positions in theta at a bound

    @property
    def cell_df(self) -> int:
        """Cells minus parameters: what the curve's form is tested with."""
        return self.cells - len(self.theta)

    def index(self, variant: str) -> tuple[int | None, int, int]:
        """Positions of (E, log A, alpha) of ``variant`` in ``theta`` (E None in log mode)."""
        i = self.names.index(variant)
        if self.mode == "shared_e":
            return 0, 1 + 2 * i, 2 + 2 * i
        if self.mode == "own_e":
            return 3 * i, 3 * i + 1, 3 * i + 2
        return None, 2 * i, 2 * i + 1

    def value(self, theta: np.ndarray, variant: str, compute: float) -> float:
        """The metric (own terms) of ``variant`` at ``compute`` for parameters ``theta``."""
        ie, ia, il = self.index(variant)
        x = math.log(compute / self.c0)
        if self.mode == "log":
            y = math.exp(theta[ia] - theta[il] * x)
        else:
            y = theta[ie] + math.exp(theta[ia] - theta[il] * x)
        return 1.0 - y if self.flip else y

    def predict(self, variant: str, compute: float) -> float:
        """The fitted value of ``variant`` at ``compute`` in the metric's own terms."""
        return self.value(self.theta, variant, compute)

    def run_var(self, variant: str, compute: float) -> float:
        """One run's noise variance on the metric's scale at ``compute`` (the residual
        variance, carried from log y to y in ``log`` mode)."""
        if self.mode != "log":
            return self.sigma2
        y = self.predict(variant, compute)
        return self.sigma2 * (1.0 - y if self.flip else y) ** 2


Points = Mapping[str, Sequence[tuple[float, float]]]  # variant -> [(compute, value)]


def n_params(mode: str, n_variants: int) -> int:
    """How many parameters ``mode`` fits for ``n_variants`` variants."""
    return {"shared_e": 1 + 2 * n_variants, "own_e": 3 * n_variants, "log": 2 * n_variants}[mode]


def fit_power_laws(points: Points, mode: str, *, flip: bool = False) -> FitResult:
    """Fit every variant's ``(compute, value)`` points (one per run; several runs per
    compute value are fine) in ``mode`` (``shared_e``, ``own_e``, ``log``). ``flip``:
    fit ``1 - value`` (an accuracy's error rate)."""
    if mode not in MODES:
        raise ValueError(f"fit mode {mode!r}: must be one of {', '.join(MODES)}")
    names = [v for v in points if points[v]]
    if not names:
        return FitResult(mode, {}, False, "no points", flip)
    data = {}
    for v in names:
        c = np.array([p[0] for p in points[v]], dtype=float)
        y = np.array([p[1] for p in points[v]], dtype=float)
        data[v] = (c, 1.0 - y if flip else y)
    c0 = min(float(c.min()) for c, _ in data.values())  # compute scale: x = C / c0 >= 1
    ymin = min(float(y.min()) for _, y in data.values())
    cells = sum(len(set(c.tolist())) for c, _ in data.values())
    if mode == "log" and ymin <= 0:
        return FitResult(mode, {}, False, "a log-space fit needs values > 0", flip)
    shell = FitResult(mode, {}, False, "", flip, cells=cells, c0=c0, names=names)

    sizes = [len(data[v][0]) for v in names]
    starts = np.cumsum([0, *sizes])

    def residuals(theta: np.ndarray) -> np.ndarray:
        parts = []
        for v in names:
            c, y = data[v]
            ie, ia, il = shell.index(v)
            x = np.log(c / c0)
            if mode == "log":
                parts.append(np.log(y) - (theta[ia] - theta[il] * x))
            else:
                parts.append(y - (theta[ie] + np.exp(theta[ia] - theta[il] * x)))
        return np.concatenate(parts)

    def jacobian(theta: np.ndarray) -> np.ndarray:
        jac = np.zeros((int(starts[-1]), len(theta)))
        for k, v in enumerate(names):
            c, _ = data[v]
            rows = slice(int(starts[k]), int(starts[k + 1]))
            ie, ia, il = shell.index(v)
            x = np.log(c / c0)
            if mode == "log":
                jac[rows, ia], jac[rows, il] = -1.0, x
            else:
                power = np.exp(theta[ia] - theta[il] * x)
                jac[rows, ie], jac[rows, ia], jac[rows, il] = -1.0, -power, x * power
        return jac

    # Starting values and bounds: E in [0, min(y)), A > 0, alpha in ALPHA_BOUNDS.
    e_hi = max(ymin * (1 - 1e-9), 1e-12)
    theta0, lo, hi = [], [], []
    if mode == "shared_e":
        theta0.append(0.5 * ymin), lo.append(0.0), hi.append(e_hi)
    for v in names:
        c, y = data[v]
        if mode == "own_e":
            ym = float(y.min())
            theta0.append(0.5 * ym), lo.append(0.0), hi.append(max(ym * (1 - 1e-9), 1e-12))
        if mode == "log":  # linear in (log A, alpha): start at the least-squares solution
            design = np.column_stack([np.ones_like(c), -np.log(c / c0)])
            loga, alpha = np.linalg.lstsq(design, np.log(y), rcond=None)[0]
            theta0 += [float(loga), float(alpha)]
        else:
            spread = max(float(y.max()) - 0.5 * ymin, 1e-6)
            theta0 += [math.log(spread), 0.3]
        lo += [-50.0, ALPHA_BOUNDS[0]]
        hi += [50.0, ALPHA_BOUNDS[1]]
    theta0 = np.clip(np.array(theta0), np.array(lo) + 1e-12, np.array(hi) - 1e-12)
    sol = optimize.least_squares(
        residuals,
        theta0,
        jac=jacobian,
        bounds=(np.array(lo), np.array(hi)),
        method="trf",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-12,
        max_nfev=5000,
    )
    theta = np.asarray(sol.x, dtype=float)
    shell.theta = theta
    curves = {}
    for v in names:
        ie, ia, il = shell.index(v)
        e = 0.0 if ie is None else float(theta[ie])
        # back to absolute compute: A * (C / c0)^-alpha = (A * c0^alpha) * C^-alpha
        curves[v] = Curve(
            e, float(math.exp(theta[ia] + theta[il] * math.log(c0))), float(theta[il])
        )
    shell.curves = curves
    n, p = len(sol.fun), len(theta)
    shell.sigma2, shell.df = _residual_variance(sol.fun, data, names, n - p, cells - p)
    jac = np.asarray(sol.jac, dtype=float)
    notes = []
    if cells - p < MIN_RESIDUAL_DF:
        notes.append(
            f"{cells} (variant, compute) points for {p} parameters leave "
            f"{max(cells - p, 0)} residual degrees of freedom (a determined fit needs "
            f"{MIN_RESIDUAL_DF})"
        )
    at_bound = [
        i
        for i, (x, a, b) in enumerate(zip(theta, lo, hi, strict=True))
        if min(x - a, b - x) <= 1e-6 * max(1.0, abs(a), abs(b))
    ]
    shell.at_bound = at_bound
    if at_bound:
        notes.append("a parameter sits at its bound (" + _param_names(shell, at_bound) + ")")
    sv = np.linalg.svd(jac, compute_uv=False) if jac.size else np.array([0.0])
    singular = sv.size < p or sv.min() <= 1e-9 * max(sv.max(), 1e-300)
    if singular:
        notes.append("the parameters trade off against each other (singular Jacobian)")
    if shell.df > 0 and not singular:
        shell.cov = shell.sigma2 * np.linalg.pinv(jac.T @ jac)
        loose = _loose_intervals(shell, lo, hi)
        if loose and not at_bound:
            notes.append("the 95% interval of " + _param_names(shell, loose) + " reaches its bound")
    else:
        shell.cov = np.full((p, p), math.nan)
    shell.note = "; ".join(notes)
    shell.determined = not notes
    return shell


def _residual_variance(
    resid: np.ndarray,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    names: list[str],
    df_total: int,
    df_lof: int,
) -> tuple[float, int]:
    """The residual variance of one run and its degrees of freedom: the larger of the
    residual mean square over every run and the lack-of-fit mean square over the cells'
    means (each cell's mean residual, weighted by its runs), so that a form that misses the
    cells' means widens the intervals instead of hiding behind the seeds' scatter."""
    if df_total <= 0:
        return math.nan, 0
    mse = float(np.sum(resid**2)) / df_total
    if df_lof <= 0:
        return mse, df_total
    ss_lof, start = 0.0, 0
    for v in names:
        c = data[v][0]
        r = resid[start : start + len(c)]
        start += len(c)
        for value in set(c.tolist()):
            cell = r[c == value]
            ss_lof += len(cell) * float(cell.mean()) ** 2
    ms_lof = ss_lof / df_lof
    return (ms_lof, df_lof) if ms_lof > mse else (mse, df_total)


def _loose_intervals(fit: FitResult, lo: list[float], hi: list[float]) -> list[int]:
    """Parameters (E, alpha) whose 95% t interval reaches past a bound."""
    t = float(sps.t.ppf(0.975, fit.df))
    out = []
    for v in fit.names:
        ie, _, il = fit.index(v)
        for i in (ie, il):
            if i is None or i in out:
                continue
            half = t * math.sqrt(max(fit.cov[i, i], 0.0))
            if (
                not math.isfinite(half)
                or fit.theta[i] - half < lo[i]
                or fit.theta[i] + half > hi[i]
            ):
                out.append(i)
    return sorted(out)


def _param_names(fit: FitResult, idx: list[int]) -> str:
    labels: list[str] = []
    if fit.mode == "shared_e":
        labels.append("E")
    for v in fit.names:
        labels += ([f"E[{v}]"] if fit.mode == "own_e" else []) + [f"A[{v}]", f"alpha[{v}]"]
    return ", ".join(labels[i] for i in idx)
