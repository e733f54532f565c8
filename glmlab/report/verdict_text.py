"""The wording of a verdict (glmlab/report/verdicts.py): differences with their intervals,
adjusted p-values, the trend with scale, and the notes a verdict carries (seeds judged on,
references, divergence, the learning rate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glmlab.report.power import Contrast
from glmlab.report.stability import Stability
from glmlab.report.stats import ALPHA, Diff

__all__ = ["fmt_interval", "fmt_p", "join_notes", "notes", "shown", "trend_text"]


def _num(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}"


def fmt_interval(estimate: float, low: float, high: float, digits: int) -> str:
    """``+0.0123 [+0.0040, +0.0205]``."""
    return f"{_num(estimate, digits)} [{_num(low, digits)}, {_num(high, digits)}]"


def fmt_p(adjusted: float | None, raw: float) -> str:
    """``p = 0.012 (adjusted; raw 0.004)`` or ``p = 0.012`` when nothing adjusted it."""
    if adjusted is None:
        return f"p = {raw:.3g} (not adjusted: outside the family)"
    if abs(adjusted - raw) < 1e-12:
        return f"p = {adjusted:.3g}"
    return f"p = {adjusted:.3g} (adjusted; raw {raw:.3g})"


def shown(d: Any, digits: int) -> str:
    """A difference with its interval, or a rate's counts."""
    if isinstance(d, Diff):
        return fmt_interval(d.diff, d.low, d.high, digits)
    return d.describe(digits)


def trend_text(p: float | None, tr: Contrast, gap: float, digits: int) -> str:
    slope = f"slope {_num(tr.estimate, digits)} per decade of compute [{_num(tr.low, digits)}, {_num(tr.high, digits)}]"
    if p is None or p >= ALPHA:
        return f"no significant trend with scale ({slope}, {fmt_p(p, tr.p)})"
    # The gap shrinks when the slope has the opposite sign to the gap itself.
    how = "shrinking" if (tr.estimate > 0) != (gap > 0) else "growing"
    return f"the gap is {how} with scale ({slope}, {fmt_p(p, tr.p)})"


def notes(
    rungs: Sequence[Any],
    stability: Stability | None,
    grid_edge: Sequence[str],
    sensitivity: str | None,
) -> list[str]:
    notes = []
    behind: dict[str, list[str]] = {}
    for r in rungs:
        where = f" at {r.name}" if r.name else ""
        if r.variant.completed < r.variant.total or r.baseline.completed < r.baseline.total:
            notes.append(f"judged{where} on {r.variant.phrase()} vs baseline {r.baseline.phrase()}")
        for arm in r.behind_reference:
            behind.setdefault(arm, []).append(r.name)
    if behind:
        arms = "; ".join(
            arm + (f" at {', '.join(n for n in names if n)}" if any(names) else "")
            for arm, names in behind.items()
        )
        notes.append(f"⚠ not past the trivial reference: {arms}")
    if stability is not None and stability.differs:
        notes.append(stability.phrase())
    if grid_edge:
        notes.append(f"⚠ lr optimum at the grid's edge: {', '.join(grid_edge)}")
    if sensitivity:
        notes.append(f"at the neighbouring lr: {sensitivity}")
    return notes


def join_notes(notes: Sequence[str]) -> str:
    return "".join(f"; {n}" for n in notes)
