"""Verdicts: one call per variant and metric, in sweeps (one rung) and ladders (several).

The one statistics path every report section calls (docs/REPORTS.md, "Verdicts"):

1. :func:`register` puts a comparison's tests into the report's :class:`Family`: the
   difference at each rung, and over two or more rungs the gap averaged over rungs and
   its trend against log compute; the equivalence test against the metric's margin when
   every rung has a comparison; :func:`register_stability` the divergence test.
2. ``family.adjust()`` (Holm).
3. :func:`judge` reads the adjusted p-values and names one category (:data:`KINDS`):
   better / worse (at every size), crosses, pooled (with the trend: is the gap shrinking
   with compute?), equivalent within ±margin (TOST at every rung), inconclusive (with the
   minimum detectable effect and the seeds the margin needs), trade-off (a call for the
   arm that diverged more often), no comparison; docs/REPORTS.md has the rules.

A verdict says on how many seeds it was judged when runs are missing, marks a difference
where an arm is not past the metric's trivial reference, and is **fragile** when its
deciding p-value lies within :data:`~glmlab.report.power.FRAGILE_Z` standard errors of
the threshold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from glmlab.report.family import Family
from glmlab.report.power import (
    Contrast,
    fragile,
    mde,
    pooled,
    seeds_needed,
    tost_p,
    trend,
)
from glmlab.report.stability import RunCount, Stability
from glmlab.report.stats import ALPHA, Diff
from glmlab.report.verdict_text import (
    fmt_interval,
    fmt_p,
    join_notes,
    notes,
    shown,
    trend_text,
)

__all__ = ["KINDS", "Rung", "Verdict", "judge", "key", "register", "register_stability"]

KINDS = (
    "better",
    "worse",
    "crosses",
    "pooled",
    "equivalent",
    "inconclusive",
    "trade-off",
    "no comparison",
)


@dataclass(frozen=True)
class Rung:
    """One size's comparison of a variant with the baseline on one metric (a sweep has
    one rung, named ""): the difference (None: fewer than 2 completed runs an arm; a rate's
    is a :class:`~glmlab.report.rates.RateDiff`), both arms' run counts, the arms not past
    the metric's trivial reference there, and why there is no difference (``missing``)."""

    name: str
    compute: float | None
    diff: Any
    variant: RunCount
    baseline: RunCount
    behind_reference: tuple[str, ...] = ()
    missing: str = ""


def key(variant: str, metric: str, rung: str, kind: str) -> Hashable:
    """The family key of one test."""
    return (variant, metric, rung, kind)


def _compared(rungs: Sequence[Rung]) -> list[Rung]:
    return [r for r in rungs if r.diff is not None]


def _t_based(rungs: Sequence[Rung]) -> bool:
    """Whether every difference has a standard error (a rate's exact test has none)."""
    return all(isinstance(r.diff, Diff) for r in rungs)


def _pooled_trend(rungs: Sequence[Rung]) -> tuple[Contrast | None, Contrast | None]:
    done = _compared(rungs)
    if len(done) < 2 or not _t_based(done):
        return None, None
    diffs = [r.diff for r in done]
    with_c = [r for r in done if r.compute]
    tr = trend([r.diff for r in with_c], [r.compute for r in with_c]) if len(with_c) > 1 else None
    return pooled(diffs), tr


def register(
    family: Family, variant: str, metric: str, rungs: Sequence[Rung], margin: float | None
) -> None:
    """Put the tests a verdict on (``variant``, ``metric``) rests on into ``family``."""
    for r in _compared(rungs):
        family.add(key(variant, metric, r.name, "difference"), r.diff.p, "difference")
    pool, tr = _pooled_trend(rungs)
    if pool is not None:
        family.add(key(variant, metric, "", "pooled"), pool.p, "pooled gap")
    if tr is not None:
        family.add(key(variant, metric, "", "trend"), tr.p, "trend")
    done = _compared(rungs)
    if margin and done and len(done) == len(rungs) and _t_based(done):
        p = max(tost_p(r.diff, margin) for r in done)
        family.add(key(variant, metric, "", "equivalence"), p, "equivalence")


def register_stability(family: Family, variant: str, stability: Stability) -> bool:
    """Put the divergence test into ``family`` when its smallest attainable p could be
    significant at the family's Bonferroni level (Tarone); returns whether it did."""
    if stability.p is None or stability.min_p is None:
        return False
    if stability.min_p >= ALPHA / (len(family) + 1):
        return False
    family.add(key(variant, "", "", "stability"), stability.p, "stability")
    return True


@dataclass(frozen=True)
class Verdict:
    """One variant's verdict on one metric: its category (:data:`KINDS`), the sentence,
    the direction (+1 the variant is better, -1 worse, 0 neither), whether the call is
    fragile, and what an inconclusive call could have detected."""

    kind: str
    text: str
    direction: int = 0
    fragile: bool = False
    mde: float | None = None
    seeds_needed: int | None = None
    pooled: Contrast | None = None
    trend: Contrast | None = None
    crossover: float | None = None


def judge(
    family: Family,
    variant: str,
    metric: str,
    rungs: Sequence[Rung],
    *,
    higher_is_better: bool | None,
    margin: float | None,
    stability: Stability | None = None,
    digits: int = 4,
    grid_edge: Sequence[str] = (),
    sensitivity: str | None = None,
    meet: Callable[[float, float], float | None] | None = None,
) -> Verdict:
    """The verdict on (``variant``, ``metric``) from the adjusted p-values of ``family``
    (after :func:`register` and ``family.adjust()``). ``grid_edge``: arms whose learning
    rate optimum sits at the grid's edge; ``sensitivity``: the verdict at a neighbouring
    lr (ladders); ``meet(lo, hi)``: where fitted curves cross between two computes."""
    sign = -1.0 if higher_is_better is False else 1.0
    words = ("better", "worse") if higher_is_better is not None else ("higher", "lower")
    done = _compared(rungs)
    missing = [
        (r.name or "this sweep") + (f" ({r.missing})" if r.missing else "")
        for r in rungs
        if r.diff is None
    ]
    extra = notes(rungs, stability, grid_edge, sensitivity)
    if not done:
        why = "fewer than 2 completed runs in an arm, or runs that do not vary"
        return Verdict("no comparison", f"no comparison ({why})" + join_notes(extra))

    def adj(r: Rung) -> float:
        return family.p(key(variant, metric, r.name, "difference"))

    good = [r for r in done if adj(r) < ALPHA and sign * r.diff.diff > 0]
    bad = [r for r in done if adj(r) < ALPHA and sign * r.diff.diff < 0]
    pool, tr = _pooled_trend(rungs)
    p_pool = family.p(key(variant, metric, "", "pooled"))
    p_eq = family.p(key(variant, metric, "", "equivalence"))
    ladder = len(rungs) > 1
    names = ", ".join(r.name for r in done)
    gone = f"; no comparison at {', '.join(missing)}" if missing else ""
    crossover = None
    if good and bad:
        kind, direction = "crosses", 0
        signed = sorted(good + bad, key=lambda r: r.compute or 0.0)
        first, second = next(
            (a, b) for a, b in itertools.pairwise(signed) if (a in good) != (b in good)
        )
        lo, hi = first.compute, second.compute
        crossover = meet(lo, hi) if meet and lo and hi else None
        how = "where the fitted curves meet"
        if crossover is None and lo and hi:
            crossover, how = math.sqrt(lo * hi), "between the rungs"
        where = f" near C* = {crossover:.3g} FLOPs ({how})" if crossover else ""
        lead = words[0] if first in good else words[1]
        text = f"crosses over{where}: {lead} at {first.name}, the opposite at {second.name}"
        deciding = max(adj(first), adj(second))
    elif len(good) == len(done) or len(bad) == len(done):
        kind = "better" if good else "worse"
        direction = 1 if good else -1
        word = words[0] if good else words[1]
        if not ladder:
            d = done[0].diff
            text = (
                f"{word}: {fmt_interval(d.diff, d.low, d.high, digits)}, {fmt_p(adj(done[0]), d.p)}"
            )
        else:
            scope = "at every size" if not missing else "at every compared size"
            text = f"{word} {scope} ({names}){gone}"
        deciding = max(adj(r) for r in done)
    elif pool is not None and p_pool is not None and p_pool < ALPHA:
        kind = "pooled"
        direction = 1 if sign * pool.estimate > 0 else -1
        word = words[0] if direction > 0 else words[1]
        against = [r.name for r in done if sign * r.diff.diff * direction < 0]
        same = (
            "same direction at every compared rung"
            if not against
            else f"the opposite sign at {', '.join(against)}"
        )
        text = (
            f"{word} on average over the rungs (pooled {fmt_interval(pool.estimate, pool.low, pool.high, digits)}, "
            f"{fmt_p(p_pool, pool.p)}); {same}{gone}"
        )
        deciding = p_pool
    elif p_eq is not None and p_eq < ALPHA:
        kind, direction = "equivalent", 0
        scope = " at every size" if ladder else ""
        if ladder:
            what = f"largest |difference| {max(abs(r.diff.diff) for r in done):.{digits}f}"
        else:
            what = shown(done[0].diff, digits)
        raw = _raw(family, variant, metric)
        text = (
            f"equivalent within ±{margin:g}{scope}: {what}, two one-sided tests {fmt_p(p_eq, raw)}"
        )
        deciding = p_eq
    else:
        kind, direction = "inconclusive", 0
        text, deciding = _inconclusive(
            family, variant, metric, rungs, pool, margin, words, good, bad, digits
        )
        text += gone
    out_mde, out_seeds = None, None
    if kind == "inconclusive":
        out_mde, out_seeds = _power(family, done, pool, margin)
    if tr is not None:
        gap = pool.estimate if pool is not None else 0.0
        text += "; " + trend_text(family.p(key(variant, metric, "", "trend")), tr, gap, digits)
    is_fragile = deciding is not None and fragile(deciding)
    if is_fragile:
        text += f" (fragile: p = {deciding:.3g} is within a rerun's spread of the 5% threshold)"
    if (
        stability is not None
        and stability.differs
        and kind in ("better", "worse", "pooled", "equivalent")
    ):
        less_stable = 1 if _rate(stability.variant) > _rate(stability.baseline) else -1
        if kind == "equivalent" or direction == less_stable:  # it favours the less stable arm
            arm = "the variant" if less_stable > 0 else "the baseline"
            kind = "trade-off"
            text = f"trade-off: {text} on the completed runs, but {arm} diverged more often"
    return Verdict(
        kind,
        text + join_notes(extra),
        direction,
        is_fragile,
        out_mde,
        out_seeds,
        pool,
        tr,
        crossover,
    )


def _raw(family: Family, variant: str, metric: str) -> float:
    return family.raw[key(variant, metric, "", "equivalence")]


def _rate(c: RunCount) -> float:
    return c.diverged / c.ended if c.ended else 0.0


def _inconclusive(
    family: Family,
    variant: str,
    metric: str,
    rungs: Sequence[Rung],
    pool: Contrast | None,
    margin: float | None,
    words: tuple[str, str],
    good: list[Rung],
    bad: list[Rung],
    digits: int,
) -> tuple[str, float | None]:
    done = _compared(rungs)
    ps = [family.p(key(variant, metric, r.name, "difference")) for r in done]
    if len(rungs) == 1:
        d = done[0].diff
        text = f"inconclusive: {shown(d, digits)}, {fmt_p(ps[0], d.p)}"
    else:
        parts = []
        if good:
            parts.append(f"{words[0]} at {', '.join(r.name for r in good)} only")
        if bad:
            parts.append(f"{words[1]} at {', '.join(r.name for r in bad)} only")
        quiet = [r.name for r in done if r not in good and r not in bad]
        if quiet:
            parts.append(f"no significant difference at {', '.join(quiet)}")
        if pool is not None:
            p_pool = family.p(key(variant, metric, "", "pooled"))
            parts.append(
                f"pooled {fmt_interval(pool.estimate, pool.low, pool.high, digits)}, {fmt_p(p_pool, pool.p)}"
            )
        text = "inconclusive: " + "; ".join(parts)
    candidates = [p for p in ps if p is not None]
    for kind in ("pooled", "equivalence"):
        p = family.p(key(variant, metric, "", kind))
        if p is not None:
            candidates.append(p)
    mde_, seeds = _power(family, done, pool, margin)
    if mde_ is not None:
        what = "pooled over the rungs" if pool is not None else "here"
        level = f"0.05/{len(family)}" if len(family) > 1 else "0.05"
        text += (
            f"; detectable at 80% power (level {level}) {what}: ±{mde_:.{digits}f}"
            if math.isfinite(mde_)
            else f"; no effect is detectable at 80% power (level {level}) {what}"
        )
        if margin:
            text += (
                f", ±{margin:g} (the margin) needs {seeds} seeds per arm"
                if seeds
                else f", ±{margin:g} (the margin): not reachable with more seeds (the items limit it)"
            )
    return text, min(candidates) if candidates else None


def _power(
    family: Family, done: Sequence[Rung], pool: Contrast | None, margin: float | None
) -> tuple[float | None, int | None]:
    """MDE at 80% power and the seeds that detect the margin, at the family's Bonferroni
    level (the strictest level a test of the family is read at)."""
    level = ALPHA / max(len(family), 1)
    if not _t_based(done):
        return None, None
    if pool is not None:
        se, df = pool.se, pool.df
    elif done:
        se, df = done[0].diff.se, done[0].diff.df
    else:
        return None, None
    comps = [r.diff.components for r in done if r.diff.components is not None]
    seeds = seeds_needed(comps, margin, level) if margin and len(comps) == len(done) else None
    return mde(se, df, level), seeds
