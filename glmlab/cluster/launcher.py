"""Make glmlab's Hydra plugins available: ``hydra/launcher=submitit_slurm_async`` (the
settings of hydra-submitit-launcher's ``submitit_slurm``, unchanged),
``hydra/launcher=glmlab_local`` (the default: :mod:`glmlab.cluster.local`) and
``hydra/sweeper=glmlab_basic`` (the settings of Hydra's ``basic`` sweeper).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from omegaconf import DictConfig, OmegaConf

from glmlab.cluster.local import TARGET as LOCAL_TARGET
from glmlab.cluster.local import register_config as register_local_config
from glmlab.cluster.validate import SWEEPER, SWEEPER_TARGET

LAUNCHER = "submitit_slurm_async"
TARGET = "hydra_plugins.glmlab_cluster.SubmititSlurmAsyncLauncher"
PLUGIN_PATH = Path(__file__).resolve().parent / "hydra_path"


@dataclass
class SlurmAsyncQueueConf(SlurmQueueConf):
    """``submitit_slurm``'s settings; the launcher submits and returns."""

    _target_: str = TARGET


@dataclass
class RepresentativeSweeperConf(BasicSweeperConf):
    """Hydra's basic sweeper's settings; configs are composed one per kind of job."""

    _target_: str = SWEEPER_TARGET


def store_sweeper() -> None:
    """Store ``hydra/sweeper/glmlab_basic`` (conf/config.yaml's sweeper) in the ConfigStore."""
    ConfigStore.instance().store(
        group="hydra/sweeper", name=SWEEPER, node=RepresentativeSweeperConf, provider="glmlab"
    )


def install() -> None:
    """Register the launcher's config and make its plugin class findable by Hydra (also
    when Hydra scanned its plugins before this ran)."""
    if str(PLUGIN_PATH) not in sys.path:
        sys.path.append(str(PLUGIN_PATH))
    store = ConfigStore.instance()
    register_local_config()
    store.store(group="hydra/launcher", name=LAUNCHER, node=SlurmAsyncQueueConf, provider="glmlab")
    store_sweeper()
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()
    known = plugins.class_name_to_class
    if TARGET not in known or LOCAL_TARGET not in known:
        from hydra_plugins.glmlab_cluster import (
            LocalParallelLauncher,
            RepresentativeSweeper,
            SubmititSlurmAsyncLauncher,
        )

        plugins.register(SubmititSlurmAsyncLauncher)
        plugins.register(LocalParallelLauncher)
        plugins.register(RepresentativeSweeper)


def submits_only(config: DictConfig) -> bool:
    """Whether a multirun's launcher returned without waiting for its jobs (so there is
    nothing to report yet: ``glmlab collect`` writes the report later)."""
    return OmegaConf.select(config, "hydra.launcher._target_", default=None) == TARGET
