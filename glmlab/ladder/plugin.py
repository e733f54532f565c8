"""Register the Hydra sweeper ``glmlab_ladder`` (hydra/sweeper=glmlab_ladder): Hydra's
basic sweeper's settings plus ``ladder``, typed by its schema (glmlab/config/ladder.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from glmlab.cluster.launcher import RepresentativeSweeperConf
from glmlab.config.ladder import LadderConfig

__all__ = ["LADDER_SWEEPER", "LadderSweeperConf", "install", "store_config"]

LADDER_SWEEPER = "glmlab_ladder"
TARGET = "hydra_plugins.glmlab_ladder.LadderSweeper"


@dataclass
class LadderSweeperConf(RepresentativeSweeperConf):
    """The basic sweeper's ``params`` (the experiment's variants x seeds) and the ladder."""

    _target_: str = TARGET
    ladder: LadderConfig = field(default_factory=LadderConfig)


def store_config() -> None:
    """Store ``hydra/sweeper/glmlab_ladder`` in Hydra's ConfigStore, so that a ladder file
    composes wherever glmlab's conf/ does (hydra_plugins.glmlab_schemas calls this)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(
        group="hydra/sweeper", name=LADDER_SWEEPER, node=LadderSweeperConf, provider="glmlab"
    )


def install() -> None:
    """Store the sweeper's config and make its class findable by Hydra (also when Hydra
    scanned its plugins before this ran); puts glmlab's plugin directory on ``sys.path``
    first (:func:`glmlab.cluster.launcher.install`)."""
    from hydra.core.plugins import Plugins

    from glmlab.cluster.launcher import install as install_cluster

    install_cluster()
    store_config()
    plugins = Plugins.instance()
    if TARGET not in plugins.class_name_to_class:
        from hydra_plugins.glmlab_ladder import LadderSweeper

        plugins.register(LadderSweeper)
