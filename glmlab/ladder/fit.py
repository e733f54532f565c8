"""Fitted trends across a ladder (docs/LADDERS.md); the verdicts across scale are the
report's (glmlab/report/verdicts.py), which reads :func:`crossover` from here.

Each variant's metric against training compute C is fitted by the saturating power law
``y = E + A * C^-alpha`` (Kaplan et al. 2020; Hoffmann et al. 2022) with
:func:`scipy.optimize.least_squares`, in one of three modes:

- ``shared_e``: one irreducible level E for all variants of the sweep, A and alpha per
  variant (the default with 3 rungs: 3 parameters per variant on 3 compute values would
  leave no residual);
- ``own_e``: E, A and alpha per variant (4 or more rungs);
- ``log``: a pure power law ``log y = log A - alpha log C`` without E.

Metrics where higher is better and that live in [0, 1] (accuracies) are fitted as their
error rate ``1 - y`` and reported back in their own terms. Uncertainty comes from
resampling each (variant, rung)'s seeds with replacement and refitting
(:func:`bootstrap_fits`); a fit whose parameters the points do not pin down (too few
compute values for its parameters, a parameter at its bound, a singular Jacobian) says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

__all__ = [
    "BootFits",
    "Curve",
    "FitResult",
    "bootstrap_fits",
    "crossover",
    "fit_power_laws",
]

ALPHA_BOUNDS = (1e-3, 4.0)
MODES = ("shared_e", "own_e", "log")


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
    """The fitted curves per variant, and whether the points determine them."""

    mode: str
    curves: dict[str, Curve]
    determined: bool
    note: str = ""  # why not determined (empty when it is)
    flip: bool = False  # fitted as 1 - y (an accuracy)

    def predict(self, variant: str, compute: float) -> float:
        """The fitted value of ``variant`` at ``compute`` in the metric's own terms."""
        y = float(self.curves[variant](compute))
        return 1.0 - y if self.flip else y


Points = Mapping[str, Sequence[tuple[float, float]]]  # variant -> [(compute, value)]


def _n_params(mode: str, n_variants: int) -> int:
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
    distinct = sum(len(set(c.tolist())) for c, _ in data.values())
    need = _n_params(mode, len(names))
    if mode == "log" and ymin <= 0:
        return FitResult(mode, {}, False, "a log-space fit needs values > 0", flip)

    def unpack(theta: np.ndarray) -> dict[str, tuple[float, float, float]]:
        out = {}
        for i, v in enumerate(names):
            if mode == "shared_e":
                e, loga, alpha = theta[0], theta[1 + 2 * i], theta[2 + 2 * i]
            elif mode == "own_e":
                e, loga, alpha = theta[3 * i], theta[3 * i + 1], theta[3 * i + 2]
            else:
                e, loga, alpha = 0.0, theta[2 * i], theta[2 * i + 1]
            out[v] = (e, loga, alpha)
        return out

    def residuals(theta: np.ndarray) -> np.ndarray:
        parts = []
        for v, (e, loga, alpha) in unpack(theta).items():
            c, y = data[v]
            x = c / c0
            if mode == "log":
                parts.append(np.log(y) - (loga - alpha * np.log(x)))
            else:
                parts.append(y - (e + np.exp(loga) * np.power(x, -alpha)))
        return np.concatenate(parts)

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
        spread = max(float(y.max()) - 0.5 * ymin, 1e-6)
        theta0 += [math.log(spread) if mode != "log" else math.log(float(y.max())), 0.3]
        lo += [-50.0, ALPHA_BOUNDS[0]]
        hi += [50.0, ALPHA_BOUNDS[1]]
    theta0 = np.clip(np.array(theta0), np.array(lo) + 1e-12, np.array(hi) - 1e-12)
    sol = optimize.least_squares(
        residuals,
        theta0,
        bounds=(np.array(lo), np.array(hi)),
        method="trf",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-12,
        max_nfev=5000,
    )
    curves = {}
    for v, (e, loga, alpha) in unpack(sol.x).items():
        # back to absolute compute: A * (C / c0)^-alpha = (A * c0^alpha) * C^-alpha
        curves[v] = Curve(float(e), float(math.exp(loga + alpha * math.log(c0))), float(alpha))
    notes = []
    if distinct <= need:
        notes.append(
            f"{distinct} (variant, compute) points for {need} parameters leave no residual"
        )
    at_bound = [
        i
        for i, (x, a, b) in enumerate(zip(sol.x, lo, hi, strict=True))
        if min(x - a, b - x) <= 1e-6 * max(1.0, abs(a), abs(b))
    ]
    if at_bound:
        notes.append("a parameter sits at its bound (" + _bound_names(mode, names, at_bound) + ")")
    sv = np.linalg.svd(sol.jac, compute_uv=False) if sol.jac.size else np.array([0.0])
    if sv.size < len(sol.x) or sv.min() <= 1e-9 * max(sv.max(), 1e-300):
        notes.append("the parameters trade off against each other (singular Jacobian)")
    note = "; ".join(notes)
    return FitResult(mode, curves, not notes, note, flip)


def _bound_names(mode: str, names: list[str], idx: list[int]) -> str:
    labels: list[str] = []
    if mode == "shared_e":
        labels.append("E")
    for v in names:
        labels += ([f"E[{v}]"] if mode == "own_e" else []) + [f"A[{v}]", f"alpha[{v}]"]
    return ", ".join(labels[i] for i in idx)


def crossover(fit: FitResult, a: str, b: str, lo: float, hi: float) -> float | None:
    """The compute in ``[lo, hi]`` where the fitted curves of ``a`` and ``b`` meet (the
    difference changes sign), or None."""
    if a not in fit.curves or b not in fit.curves:
        return None

    def gap(logc: float) -> float:
        return float(fit.curves[a](math.exp(logc)) - fit.curves[b](math.exp(logc)))

    grid = np.linspace(math.log(lo), math.log(hi), 200)
    values = [gap(g) for g in grid]
    for x0, x1, g0, g1 in zip(grid, grid[1:], values, values[1:], strict=False):
        if g0 == 0.0:
            return math.exp(x0)
        if g0 * g1 < 0:
            return math.exp(optimize.brentq(gap, x0, x1))
    return None


@dataclass
class BootFits:
    """Percentile intervals from refitting seed resamples: per variant its parameters,
    and per variant the gap to the baseline at the target compute."""

    n: int
    params: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    gaps: dict[str, tuple[float, float]] = field(default_factory=dict)


Cells = Mapping[str, Mapping[float, Sequence[float]]]  # variant -> compute -> seed values


def _points(cells: Cells) -> dict[str, list[tuple[float, float]]]:
    return {v: [(c, y) for c, ys in byc.items() for y in ys] for v, byc in cells.items()}


def bootstrap_fits(
    cells: Cells,
    mode: str,
    *,
    baseline: str | None,
    target: float,
    n_boot: int = 400,
    seed: int = 20240605,
    flip: bool = False,
) -> BootFits:
    """Resample each (variant, compute) cell's seed values with replacement ``n_boot``
    times, refit, and return 95% percentile intervals of E, A, alpha per variant and of
    each variant's fitted gap to ``baseline`` at ``target`` compute (metric's terms)."""
    rng = np.random.default_rng(seed)
    samples: dict[str, dict[str, list[float]]] = {v: {"E": [], "A": [], "alpha": []} for v in cells}
    gaps: dict[str, list[float]] = {v: [] for v in cells if v != baseline}
    for _ in range(n_boot):
        resampled = {
            v: {c: list(rng.choice(np.asarray(ys), size=len(ys))) for c, ys in byc.items() if ys}
            for v, byc in cells.items()
        }
        fit = fit_power_laws(_points(resampled), mode, flip=flip)
        for v, curve in fit.curves.items():
            for k in ("E", "A", "alpha"):
                samples[v][k].append(getattr(curve, k))
        if baseline in fit.curves:
            for v in gaps:
                if v in fit.curves:
                    gaps[v].append(fit.predict(v, target) - fit.predict(baseline, target))
    out = BootFits(n_boot)
    for v, ks in samples.items():
        out.params[v] = {k: _pct(vals) for k, vals in ks.items() if vals}
    out.gaps = {v: _pct(vals) for v, vals in gaps.items() if vals}
    return out


def _pct(values: Sequence[float]) -> tuple[float, float]:
    low, high = np.quantile(np.asarray(values, dtype=float), [0.025, 0.975])
    return float(low), float(high)
