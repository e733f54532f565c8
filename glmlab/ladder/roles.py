"""Which runs of a ladder sweep count, and as what (docs/LADDERS.md, "Which runs count").

A run directory of a ladder sweep is placed by its overrides (:func:`place`): its variant,
rung (shape and steps), learning rate and seed, and a **role**:

- ``tuning``: a grid run on a tuning seed at a learning rate of the grid; the lr choice
  reads it, the verdict never does;
- ``verdict``: a seed run at the lr its arm chose (``ladder.json``'s ``chosen``: what the
  sweeper ran the seeds at);
- ``superseded``: a seed run at another lr (the grid was widened, or its results changed,
  and the arm now chooses another lr), or a grid run at an lr the grid no longer has:
  listed, never pooled;
- None: not a run of the plan (another variant, shape or seed).

:func:`ladder_roles` gives every run of a sweep directory its role, so that the sweep's
ordinary report and its exports (``glmlab results``, LaTeX) group tuning, verdict and
superseded runs apart instead of pooling them (:data:`ROLE_KEY` joins their labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmlab.io import read_json
from glmlab.ladder.spec import LADDER_KEYS, LadderPlan, Rung, show_lr
from glmlab.runs.naming import run_address, variant_overrides

__all__ = [
    "LADDER_FILE",
    "ROLES",
    "ROLE_KEY",
    "Place",
    "idents",
    "ladder_roles",
    "place",
    "read_plan",
]

LADDER_FILE = "ladder.json"  # the plan the sweeper saves in the sweep directory
ROLE_KEY = "ladder.role"  # how a ladder run's role shows among its variant's overrides
ROLES = ("tuning", "verdict", "superseded")


@dataclass(frozen=True)
class Place:
    """Where a run sits in a ladder plan."""

    variant: int  # index into plan.variants
    rung: Rung
    lr: float
    seed: int
    role: str  # one of ROLES


def _key(o: str) -> str:
    return o.partition("=")[0].lstrip("+~")


def idents(plan: LadderPlan) -> list[frozenset[str]]:
    """Each plan variant's address (its overrides, as a run's are compared with it)."""
    return [run_address(variant_overrides(list(v))) for v in plan.variants]


def place(
    overrides: Sequence[str], plan: LadderPlan, known: list[frozenset[str]] | None = None
) -> Place | None:
    """The :class:`Place` of a run with ``overrides`` in ``plan``; None if not the plan's."""
    values = {_key(o): o.partition("=")[2] for o in overrides}
    try:
        shape = (
            int(values["model.n_layers"]),
            int(values["model.dim"]),
            int(values["model.n_heads"]),
            int(values["train.max_steps"]),
        )
        lr, seed = float(values["train.lr"]), int(values["seed"])
    except (KeyError, ValueError):
        return None
    rung = next((r for r in plan.rungs if (r.n_layers, r.dim, r.n_heads, r.steps) == shape), None)
    # variant_overrides: without what names no variant (the experiment, and what a launcher
    # adds, e.g. train.progress=false when runs go side by side: glmlab/cluster/local.py).
    rest = run_address(variant_overrides([o for o in overrides if _key(o) not in LADDER_KEYS]))
    known = idents(plan) if known is None else known
    if rung is None or rest not in known:
        return None
    vi = known.index(rest)
    if seed in plan.grid_seeds():
        on_grid = show_lr(lr) in {show_lr(g) for g in plan.lr_grid}
        return Place(vi, rung, lr, seed, "tuning" if on_grid else "superseded")
    if seed not in plan.seeds:
        return None
    chosen = plan.chosen.get(plan.arm_key(plan.variants[vi], rung))
    role = "verdict" if chosen is not None and show_lr(chosen) == show_lr(lr) else "superseded"
    return Place(vi, rung, lr, seed, role)


def read_plan(sweep_dir: str | Path) -> LadderPlan | None:
    """The plan a ladder sweep saved (``ladder.json``), or None for another sweep."""
    path = Path(sweep_dir) / LADDER_FILE
    if not path.exists():
        return None
    return LadderPlan.from_dict(read_json(path)["plan"])


def ladder_roles(sweep_dir: str | Path, overrides: Sequence[Sequence[str] | None]) -> list[Any]:
    """Each run's role (None: not the plan's) for runs with ``overrides`` in ``sweep_dir``;
    all None when the sweep is no ladder."""
    plan = read_plan(sweep_dir)
    if plan is None:
        return [None] * len(overrides)
    known = idents(plan)
    out = []
    for o in overrides:
        found = place(list(o or []), plan, known)
        out.append(found.role if found else None)
    return out
