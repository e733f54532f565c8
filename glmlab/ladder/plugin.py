"""Register the Hydra sweeper ``glmlab_ladder`` (hydra/sweeper=glmlab_ladder): Hydra's
basic sweeper's settings plus ``ladder`` (glmlab/ladder/spec.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glmlab.cluster.launcher import RepresentativeSweeperConf

__all__ = ["LADDER_SWEEPER", "LadderSweeperConf", "install"]

LADDER_SWEEPER = "glmlab_ladder"
TARGET = "hydra_plugins.glmlab_ladder.LadderSweeper"


@dataclass
class LadderSweeperConf(RepresentativeSweeperConf):
    """The basic sweeper's ``params`` (the experiment's variants x seeds) and the ladder."""

    _target_: str = TARGET
    ladder: Any = None  # rungs, tokens_per_param, lr_grid, tuning_seed, target_compute, fit


def install() -> None:
    """Store the sweeper's config and make its class findable by Hydra (also when Hydra
    scanned its plugins before this ran). Needs :func:`glmlab.cluster.launcher.install`
    first (it puts the plugin directory on ``sys.path``)."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    from glmlab.cluster.launcher import install as install_cluster

    install_cluster()
    ConfigStore.instance().store(
        group="hydra/sweeper", name=LADDER_SWEEPER, node=LadderSweeperConf, provider="glmlab"
    )
    plugins = Plugins.instance()
    if TARGET not in plugins.class_name_to_class:
        from hydra_plugins.glmlab_ladder import LadderSweeper

        plugins.register(LadderSweeper)
