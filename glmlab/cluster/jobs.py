"""A local sweep's jobs as the launcher sees them before they run: each job's composed
config and run directory, and the interruption that stops a sweep (a signal) with the list
of its runs, so that the app can say what a rerun of the same command does for each."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from glmlab.runs.naming import variant_overrides

__all__ = ["PlannedRun", "SweepInterrupted", "job_config", "planned_runs", "run_dir_of"]


@dataclass
class PlannedRun:
    """One job of a launch: its number in the sweep, overrides, run directory and seed."""

    num: int
    overrides: list[str]
    run_dir: Path
    seed: Any = None

    @property
    def label(self) -> str:
        """``[run 3] objective.shuffle_spans=false seed=1``: how the console names it."""
        name = " ".join(variant_overrides(self.overrides)) or "(defaults)"
        return f"[run {self.num}] {name} seed={self.seed}"


@dataclass(eq=False)
class SweepInterrupted(KeyboardInterrupt):
    """A signal (``signum``) stopped a sweep: its running runs stopped after their
    checkpoint, no new run started. ``config`` is the sweep's, ``runs`` the jobs of the
    interrupted launch, ``started`` how many of them had started. A KeyboardInterrupt, so that Hydra lets it through to the app,
    which writes the report of what finished (:func:`glmlab.cli.callback.end_interrupted`)."""

    signum: int
    config: DictConfig
    runs: list[PlannedRun] = field(default_factory=list)
    started: int | None = None  # how many of ``runs`` started (None: not known)

    def __str__(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 130 after Ctrl-C."""
        return 128 + int(self.signum)


def job_config(launcher: Any, overrides: Sequence[str], num: int) -> DictConfig:
    """The composed config of job ``num`` of a sweep (as Hydra's launchers compose it)."""
    config = launcher.hydra_context.config_loader.load_sweep_config(
        launcher.config, list(overrides)
    )
    with open_dict(config):
        config.hydra.job.id = f"{config.hydra.job.name}_{num}"
        config.hydra.job.num = num
    return config


def run_dir_of(config: DictConfig) -> Path:
    """The absolute run directory of a job's composed ``config`` (``hydra.sweep.dir`` /
    ``hydra.sweep.subdir``, resolved as Hydra's ``run_job`` resolves them)."""
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    hydra_config.set_config(config)
    try:
        sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
        subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
    finally:
        hydra_config.cfg = before
    return Path(os.path.abspath(os.path.join(sweep_dir, subdir)))


def planned_runs(
    launcher: Any, job_overrides: Sequence[Sequence[str]], first: int
) -> list[PlannedRun]:
    """Every job of a launch as a :class:`PlannedRun` (configs composed here)."""
    runs = []
    for i, overrides in enumerate(job_overrides):
        config = job_config(launcher, overrides, first + i)
        runs.append(PlannedRun(first + i, list(overrides), run_dir_of(config), config.get("seed")))
    return runs
