"""Fitted trends across a ladder (docs/LADDERS.md).

The fits are glmlab/ladder/powerlaw.py's (re-exported here); this module adds where two
fitted curves cross (:func:`crossings`) and each rung's measured difference
(:class:`RungDiff`). The verdict across scale is the report's one verdict path
(glmlab/report/verdicts.py), which reads the crossings from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from glmlab.ladder.powerlaw import (
    ALPHA_BOUNDS,
    MIN_RESIDUAL_DF,
    MODES,
    Curve,
    FitResult,
    fit_power_laws,
    n_params,
)

__all__ = [
    "ALPHA_BOUNDS",
    "MIN_RESIDUAL_DF",
    "MODES",
    "Curve",
    "FitResult",
    "RungDiff",
    "crossings",
    "crossover",
    "fit_power_laws",
    "n_params",
]


def crossings(fit: Any, a: str, b: str, lo: float, hi: float) -> list[float]:
    """Every compute in ``[lo, hi]`` where the fitted curves of ``a`` and ``b`` meet (the
    difference changes sign), ascending. ``fit``: a :class:`FitResult`, or any predictor
    with ``names`` and ``predict(variant, compute)`` (the two-step map of an accuracy)."""
    names = getattr(fit, "names", [])
    if a not in names or b not in names or not hi > lo:
        return []

    def gap(logc: float) -> float:
        return float(fit.predict(a, math.exp(logc)) - fit.predict(b, math.exp(logc)))

    grid = np.linspace(math.log(lo), math.log(hi), 400)
    values = [gap(g) for g in grid]
    out = []
    for x0, x1, g0, g1 in zip(grid, grid[1:], values, values[1:], strict=False):
        if g0 == 0.0 and g1 != 0.0:
            out.append(math.exp(x0))
        elif g0 * g1 < 0:
            out.append(math.exp(optimize.brentq(gap, x0, x1)))
    return out


def crossover(fit: Any, a: str, b: str, lo: float, hi: float) -> float | None:
    """The first compute in ``[lo, hi]`` where the fitted curves of ``a`` and ``b`` meet,
    or None."""
    found = crossings(fit, a, b, lo, hi)
    return found[0] if found else None


@dataclass(frozen=True)
class RungDiff:
    """Variant minus baseline at one rung: estimate, 95% interval, and significance after
    the report's family adjustment."""

    rung: str
    compute: float
    diff: float
    low: float | None
    high: float | None
    significant: bool
