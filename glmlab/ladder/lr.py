"""Choosing each arm's learning rate (an arm: one variant at one rung) from its grid runs
on the tuning seeds, by the *validation loss of the training objective* only.

The choice reads nothing else of a run: the evaluation suite the verdict is read from
cannot move it (a test perturbs the suite's numbers and gets the same choice). With several
tuning seeds a grid point's loss is their mean. A grid point that failed or diverged (on
any tuning seed) counts as worse than every finished one; a best value at either end of
the grid is flagged: the optimum may lie outside it.

Two ways to read the lr off the grid (``ladder.lr_choice``):

- ``fit`` (default): the vertex of the parabola in log lr through the best grid point and
  its two neighbours (rounded to 3 significant digits), so that the choice moves smoothly
  with the losses instead of jumping a whole grid step on a small difference; at the grid's
  edge, or when a neighbour did not finish, the best grid point;
- ``best``: the grid point with the lowest loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from glmlab.runs.result import RunResult

__all__ = ["SELECTION_METRIC", "GridPoint", "LrChoice", "choose_lr"]

SELECTION_METRIC = "final_val_loss"  # RunResult.final_val_loss


@dataclass(frozen=True)
class GridPoint:
    """One grid lr: its status and validation loss (None: no value), over its tuning seeds."""

    lr: float
    status: str
    val_loss: float | None
    seeds: int = 1  # tuning-seed runs it stands for

    @classmethod
    def from_result(cls, lr: float, result: RunResult | None) -> GridPoint:
        """From a run's result (None: not run yet). Only the selection metric (the
        validation loss) of a finished run is read."""
        if result is None:
            return cls(lr, "missing", None)
        value = result.final_val_loss if result.finished else None
        ok = value is not None and math.isfinite(value)
        return cls(lr, result.status, value if ok else None)

    @classmethod
    def combine(cls, lr: float, points: Sequence[GridPoint]) -> GridPoint:
        """One lr's runs on several tuning seeds: the mean loss when every one is usable,
        else the first unusable one's status (naming how many of them it is)."""
        if not points:
            return cls(lr, "missing", None, 0)
        bad = [p for p in points if not p.usable]
        if not bad:
            mean = float(np.mean([p.val_loss for p in points]))
            return cls(lr, "completed", mean, len(points))
        status = bad[0].status
        if len(points) > 1:
            status = f"{status} ({len(bad)} of {len(points)} seeds)"
        return cls(lr, status, None, len(points))

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
    grid_best: float | None = None  # the grid point with the lowest loss
    fitted: bool = False  # lr is the vertex of the parabola in log lr (else a grid point)

    @property
    def warning(self) -> str:
        if self.at_edge is None:
            return ""
        side = "smallest" if self.at_edge == "low" else "largest"
        return f"the best lr is the grid's {side} value: the optimum may lie outside the grid"

    @property
    def how(self) -> str:
        """How the lr was read off the grid, in words."""
        if self.lr is None:
            return "none"
        return "fitted minimum (parabola in log lr)" if self.fitted else "best grid point"


def _vertex(points: Sequence[GridPoint]) -> float:
    """The lr at the vertex of the parabola through three (log lr, loss) points whose middle
    one is the lowest, rounded to 3 significant digits (a run directory's name shows it)."""
    x = np.log([p.lr for p in points])
    y = np.array([p.val_loss for p in points], dtype=float)
    a, b, _ = np.polyfit(x, y, 2)
    vertex = float(np.clip(-b / (2 * a), x[0], x[2])) if a > 0 else float(x[1])
    return float(f"{math.exp(vertex):.3g}")


def choose_lr(points: Sequence[GridPoint], mode: str = "best") -> LrChoice:
    """The lr of the lowest validation loss among completed grid points (ties go to the
    smaller lr); ``mode="fit"``: the parabola's vertex through it and its two grid
    neighbours (module docstring). The edge flag compares with the whole grid, whatever
    finished."""
    if mode not in ("best", "fit"):
        raise ValueError(f"lr choice {mode!r}: must be 'fit' or 'best'")
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
    if mode == "best" or edge is not None:
        return LrChoice(best.lr, ordered, edge, problem, best.lr)
    i = ordered.index(best)
    trio = ordered[i - 1 : i + 2]
    if not all(p.usable for p in trio):
        note = "no parabola: a neighbour of the best lr did not finish, the best grid point is used"
        return LrChoice(best.lr, ordered, edge, "; ".join(x for x in (problem, note) if x), best.lr)
    return LrChoice(_vertex(trio), ordered, None, problem, best.lr, fitted=True)
