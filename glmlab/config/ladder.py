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
    "MIN_GRID",
    "MIN_RUNGS",
    "LadderConfig",
    "RungConfig",
    "ladder_settings",
]

# How the saturating power law is fitted (glmlab/ladder/fit.py): E shared by the sweep's
# variants, each variant its own E (4+ rungs), or a pure power law in log space (no E).
FIT_MODES = ("auto", "shared_e", "own_e", "log")
MIN_RUNGS = 3
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


@checks(enough_rungs, log_spaced_grid)
@dataclass
class LadderConfig:
    """``hydra.sweeper.ladder``: the rungs (model sizes), the token rule, the learning-rate
    grid, the tuning seed and the extrapolation target (docs/LADDERS.md)."""

    rungs: list[RungConfig] = field(default_factory=list)  # smallest first
    # the token rule: D = tokens_per_param x N (non-embedding parameters)
    tokens_per_param: float = rule(MISSING, gt=0)
    lr_grid: list[float] = field(default_factory=list)  # log-spaced, each arm picks one
    # the seed of the grid runs: not a verdict seed, so the lr choice cannot leak into it
    tuning_seed: int = seed_rule(MISSING)
    # the extrapolation target in FLOPs; null: 10x the largest rung's
    target_compute: float | None = rule(None, gt=0)
    fit: str = rule("auto", choices=FIT_MODES)  # how the power law is fitted
    bootstrap: int = rule(400, ge=0)  # seed resamples for the fit's intervals

    def learning_rates(self) -> list[float]:
        """The grid's distinct learning rates, ascending."""
        return sorted({float(g) for g in self.lr_grid})


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
