"""A ladder file's settings (``hydra.sweeper.ladder``, conf/ladder/*.yaml) as schema
dataclasses: :class:`LadderConfig` and its :class:`RungConfig` rungs, the typed node of the
ladder sweeper's config (so Hydra checks their types when it composes) and checked by the
same :func:`~glmlab.config.rules.rule` / :func:`~glmlab.config.rules.checks` system as the
run config (:func:`ladder_settings`, before any run). A new ladder key is one field here;
a new rule relating several of them is one function in the ``@checks`` list of its
dataclass. The plan built from these settings (rungs' steps, FLOPs, jobs) is
glmlab/ladder/spec.py."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from glmlab.config.rules import ConfigError, checks, plain_container, rule, to_dataclass
from glmlab.config.schema import heads_divide_dim, seed_rule

__all__ = [
    "FIT_MODES",
    "HOLDOUT_MODES",
    "LR_CHOICES",
    "MIN_FIT_RUNGS",
    "MIN_GRID",
    "MIN_RUNGS",
    "LadderConfig",
    "RungConfig",
    "ladder_settings",
]

# How the saturating power law is fitted (glmlab/ladder/fit.py): E shared by the sweep's
# variants, each variant its own E (4+ rungs), or a pure power law in log space (no E).
FIT_MODES = ("auto", "shared_e", "own_e", "log")
# ``last``: fit on the smaller rungs, predict the largest, compare with what it measured.
HOLDOUT_MODES = ("none", "last")
# How an arm's lr is read off its grid (glmlab/ladder/lr.py): the vertex of a quadratic in
# log lr through the best grid point and its two neighbours, or the best grid point.
LR_CHOICES = ("fit", "best")
MIN_RUNGS = 3
MIN_FIT_RUNGS = 3  # rungs a fit needs left after the held-out one (a pure power law: 2 df)
MIN_GRID = 3
GROUP = "ladder"  # how messages name the settings (hydra.sweeper.ladder in the config)


@checks(heads_divide_dim)
@dataclass
class RungConfig:
    """One model size of the ladder (smallest first): its shape; the token rule gives it
    its steps (glmlab/ladder/spec.py)."""

    n_layers: int = rule(MISSING, ge=1)
    dim: int = rule(MISSING, ge=1)
    n_heads: int = rule(MISSING, ge=1)
    name: str | None = None  # how reports name it; null: <n_layers>x<dim>

    def label(self) -> str:
        """The rung's name in logs, run directories' plans and reports."""
        return self.name or f"{self.n_layers}x{self.dim}"


def enough_rungs(ladder: LadderConfig, group: str) -> list[str]:
    """At least :data:`MIN_RUNGS` rungs, each with its own name."""
    if len(ladder.rungs) < MIN_RUNGS:
        return [
            f"{group}.rungs: list at least {MIN_RUNGS} model sizes "
            "({n_layers, dim, n_heads} each, smallest first)"
        ]
    if len({r.label() for r in ladder.rungs}) < len(ladder.rungs):
        return [f"{group}.rungs: two rungs have the same name: give each its own"]
    return []


def log_spaced_grid(ladder: LadderConfig, group: str) -> list[str]:
    """At least :data:`MIN_GRID` distinct learning rates > 0, log-spaced."""
    grid = list(ladder.lr_grid)
    values = ladder.learning_rates()
    if not all(math.isfinite(g) for g in values):
        return [f"{group}.lr_grid={grid}: must be a list of learning rates"]
    if len(values) < MIN_GRID:
        return [
            f"{group}.lr_grid={grid}: needs at least {MIN_GRID} distinct learning rates, "
            "log-spaced around the default (e.g. [1e-3, 3e-3, 1e-2])"
        ]
    if values[0] <= 0:
        return [f"{group}.lr_grid={grid}: every learning rate must be > 0"]
    steps = [math.log(b / a) for a, b in itertools.pairwise(values)]
    if max(steps) > 2.0 * min(steps):
        return [
            f"{group}.lr_grid={grid}: not log-spaced (consecutive ratios differ by more "
            "than 2x): use a constant ratio, e.g. [1e-3, 3e-3, 1e-2]"
        ]
    return []


def holdout_leaves_a_fit(ladder: LadderConfig, group: str) -> list[str]:
    """A held-out rung leaves at least :data:`MIN_FIT_RUNGS` rungs to fit on."""
    if ladder.holdout != "none" and len(ladder.rungs) < MIN_FIT_RUNGS + 1:
        return [
            f"{group}.holdout={ladder.holdout} needs at least {MIN_FIT_RUNGS + 1} rungs "
            f"({MIN_FIT_RUNGS} to fit, 1 to predict), the ladder has {len(ladder.rungs)}: "
            f"add a rung or set {group}.holdout=none"
        ]
    return []


def budget_axis_values(ladder: LadderConfig, group: str) -> list[str]:
    """A budget axis lists at least 2 distinct ratios > 0, ``tokens_per_param`` among them."""
    axis = sorted({float(x) for x in ladder.budget_axis})
    if not axis:
        return []
    if len(axis) < 2:
        return [
            f"{group}.budget_axis={list(ladder.budget_axis)} has one value: list at least 2 "
            f"tokens-per-parameter ratios (e.g. [{ladder.tokens_per_param:g}, "
            f"{2 * ladder.tokens_per_param:g}]) or remove it"
        ]
    if axis[0] <= 0:
        return [f"{group}.budget_axis={list(ladder.budget_axis)}: every ratio must be > 0"]
    if float(ladder.tokens_per_param) not in axis:
        return [
            f"{group}.budget_axis={list(ladder.budget_axis)} lacks tokens_per_param="
            f"{ladder.tokens_per_param:g} (the ratio the verdicts are read at): add it"
        ]
    return []


@checks(enough_rungs, log_spaced_grid, holdout_leaves_a_fit, budget_axis_values)
@dataclass
class LadderConfig:
    """``hydra.sweeper.ladder``: the rungs (model sizes), the token rule, the learning-rate
    grid and its tuning seeds, the extrapolation target, the prediction check and the
    budget axis (docs/LADDERS.md)."""

    rungs: list[RungConfig] = field(default_factory=list)  # smallest first
    # the token rule: D = tokens_per_param x N (non-embedding parameters)
    tokens_per_param: float = rule(MISSING, gt=0)
    lr_grid: list[float] = field(default_factory=list)  # log-spaced, each arm picks one
    # the first seed of the grid runs: not a verdict seed, so the lr choice cannot leak into it
    tuning_seed: int = seed_rule(MISSING)
    # grid runs per lr: seeds tuning_seed, tuning_seed + 1, ...; the choice reads their mean
    tuning_seeds: int = rule(1, ge=1)
    lr_choice: str = rule("fit", choices=LR_CHOICES)  # quadratic vertex in log lr, or argmin
    # the extrapolation target in FLOPs; null: one rung step past the largest rung (the
    # ladder's own spacing); one further than the ladder spans is labelled as such
    target_compute: float | None = rule(None, gt=0)
    fit: str = rule("auto", choices=FIT_MODES)  # how the power law is fitted
    # refits of seed resamples: how often a fit fails or hits a bound (a determined fit's
    # refits stay inside the bounds); 0: none
    bootstrap: int = rule(200, ge=0)
    # last: fit on the smaller rungs, predict the largest, check against what it measured
    holdout: str = rule("none", choices=HOLDOUT_MODES)
    # a second budget axis: tokens-per-parameter ratios every rung also trains at (each
    # with its own lr grid); [] = tokens_per_param only
    budget_axis: list[float] = field(default_factory=list)

    def learning_rates(self) -> list[float]:
        """The grid's distinct learning rates, ascending."""
        return sorted({float(g) for g in self.lr_grid})

    def ratios(self) -> list[float]:
        """The token rule's ratios: ``tokens_per_param`` first, then the budget axis's others."""
        main = float(self.tokens_per_param)
        return [main, *sorted({float(x) for x in self.budget_axis} - {main})]

    def tuning_seed_list(self) -> list[int]:
        """The grid's seeds: ``tuning_seed`` and the next ``tuning_seeds - 1`` integers."""
        return [self.tuning_seed + k for k in range(self.tuning_seeds)]


def ladder_settings(node: Mapping[str, Any] | Any) -> LadderConfig:
    """The checked ladder settings from the sweeper's ``ladder`` node: every problem in one
    :class:`~glmlab.config.rules.ConfigError` line, naming the fix."""
    values = plain_container(node)
    required = ("rungs", "tokens_per_param", "lr_grid", "tuning_seed")
    if not values or (
        isinstance(values, Mapping) and all(values.get(k) in (None, MISSING, []) for k in required)
    ):
        raise ConfigError(
            "hydra.sweeper.ladder is empty: pick a ladder file (+ladder=cpu) or set "
            "rungs, tokens_per_param, lr_grid and tuning_seed under hydra.sweeper.ladder"
        )
    return to_dataclass(LadderConfig, values, GROUP)
