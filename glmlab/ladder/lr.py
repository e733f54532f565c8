"""Choosing each arm's learning rate (an arm: one variant at one rung) from its grid runs
on the tuning seed, by the *validation loss of the training objective* only.

The choice reads nothing else of a run: the evaluation suite the verdict is read from
cannot move it (a test perturbs the suite's numbers and gets the same choice). A grid
point that failed or diverged counts as worse than every finished one; a best value at
either end of the grid is flagged: the optimum may lie outside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from glmlab.runs.result import RunResult

__all__ = ["SELECTION_METRIC", "GridPoint", "LrChoice", "choose_lr"]

SELECTION_METRIC = "final_val_loss"  # RunResult.final_val_loss


@dataclass(frozen=True)
class GridPoint:
    """One grid run: its learning rate, status and validation loss (None: no value)."""

    lr: float
    status: str
    val_loss: float | None

    @classmethod
    def from_result(cls, lr: float, result: RunResult | None) -> GridPoint:
        """From a run's result (None: not run yet). Only the selection metric (the
        validation loss) of a finished run is read."""
        if result is None:
            return cls(lr, "missing", None)
        value = result.final_val_loss if result.finished else None
        ok = value is not None and math.isfinite(value)
        return cls(lr, result.status, value if ok else None)

    @property
    def usable(self) -> bool:
        return self.status == "completed" and self.val_loss is not None


@dataclass(frozen=True)
class LrChoice:
    """The chosen learning rate of one arm (None when no grid point finished)."""

    lr: float | None
    points: tuple[GridPoint, ...]
    at_edge: str | None  # "low" or "high": the best value is the grid's smallest/largest
    problem: str = ""  # why nothing or only part of the grid could be used

    @property
    def warning(self) -> str:
        if self.at_edge is None:
            return ""
        side = "smallest" if self.at_edge == "low" else "largest"
        return f"the best lr is the grid's {side} value: the optimum may lie outside the grid"


def choose_lr(points: Sequence[GridPoint]) -> LrChoice:
    """The lr with the lowest validation loss among completed grid points; ties go to the
    smaller lr. The edge flag compares with the whole grid, whatever finished."""
    ordered = tuple(sorted(points, key=lambda p: p.lr))
    if not ordered:
        return LrChoice(None, (), None, "no grid points")
    usable = [p for p in ordered if p.usable]
    unusable = [p for p in ordered if not p.usable]
    problem = ""
    if unusable:
        problem = "; ".join(f"lr {p.lr:g} {p.status}" for p in unusable)
    if not usable:
        return LrChoice(None, ordered, None, problem or "no grid point finished")
    best = min(usable, key=lambda p: (p.val_loss, p.lr))
    edge = "low" if best.lr == ordered[0].lr else "high" if best.lr == ordered[-1].lr else None
    return LrChoice(best.lr, ordered, edge, problem)
