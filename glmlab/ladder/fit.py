"""Fitted trends across a ladder and the verdict across scale (docs/LADDERS.md).

The fits are glmlab/ladder/powerlaw.py's (re-exported here); this module adds where two
fitted curves cross (:func:`crossings`) and the verdict of one metric across the rungs
(:func:`verdict`), from each rung's paired difference (:class:`RungDiff`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
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
    "Verdict",
    "crossings",
    "crossover",
    "fit_power_laws",
    "n_params",
    "verdict",
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
    """Variant minus baseline at one rung: estimate, 95% interval, significance."""

    rung: str
    compute: float
    diff: float
    low: float | None
    high: float | None
    significant: bool


@dataclass(frozen=True)
class Verdict:
    """One metric's verdict across scale for one variant against the baseline."""

    kind: str  # better | worse | crosses | not significant
    text: str
    crossover: float | None = None


def verdict(
    diffs: Sequence[RungDiff],
    *,
    higher_is_better: bool,
    fit: FitResult | None = None,
    variant: str | None = None,
    baseline: str | None = None,
    missing: Mapping[str, str] | None = None,
) -> Verdict:
    """``better at every size`` / ``worse at every size`` when every rung's difference is
    significant in one direction and no rung lacks a comparison; ``crosses over near C*``
    when significant differences of both signs occur (C* where the fitted curves meet
    between those rungs, else the geometric midpoint of the two rungs where the sign
    changes); ``not significant`` otherwise (saying at which sizes it is). ``missing``:
    ``{rung: why}`` of the ladder's rungs without a comparison, each named in the text."""
    lacking = ""
    if missing:
        lacking = "; no comparison at " + "; ".join(f"{r} ({why})" for r, why in missing.items())
    if not diffs:
        return Verdict("not significant", "not significant: no rung has a comparison" + lacking)
    sign = 1.0 if higher_is_better else -1.0
    ordered = sorted(diffs, key=lambda d: d.compute)
    good = [d for d in ordered if d.significant and sign * d.diff > 0]
    bad = [d for d in ordered if d.significant and sign * d.diff < 0]
    if len(good) == len(ordered) and not missing:
        return Verdict("better", "better at every size")
    if len(bad) == len(ordered) and not missing:
        return Verdict("worse", "worse at every size")
    if good and bad:
        signed = [(d, 1 if d in good else -1) for d in ordered if d.significant]
        first = next((a, b) for (a, sa), (b, sb) in itertools.pairwise(signed) if sa != sb)
        lo, hi = first[0].compute, first[1].compute
        c_star = None
        if fit is not None and variant is not None and baseline is not None:
            c_star = crossover(fit, variant, baseline, lo, hi)
        how = "where the fitted curves meet"
        if c_star is None:
            c_star, how = math.sqrt(lo * hi), "between the rungs"
        direction = "better" if first[0] in good else "worse"
        after = "worse" if direction == "better" else "better"
        return Verdict(
            "crosses",
            f"crosses over near C* = {c_star:.3g} FLOPs ({how}): {direction} below, "
            f"{after} above{lacking}",
            c_star,
        )
    if missing and (len(good) == len(ordered) or len(bad) == len(ordered)):
        word = "better" if good else "worse"
        return Verdict(
            "not significant",
            f"{word} at every rung compared ({', '.join(d.rung for d in ordered)}), but not "
            f"every size has a comparison{lacking}",
        )
    parts = []
    if good:
        parts.append("better at " + ", ".join(d.rung for d in good))
    if bad:
        parts.append("worse at " + ", ".join(d.rung for d in bad))
    rest = [d.rung for d in ordered if not d.significant]
    if rest:
        parts.append("no significant difference at " + ", ".join(rest))
    return Verdict(
        "not significant", "not significant at every size: " + "; ".join(parts) + lacking
    )
