"""The Hydra application behind ``python -m glmlab``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from glmlab.run import execute_run, register_resolvers
from glmlab.rundir import RunStatus
from glmlab.summary import run_summary

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://glmlab.conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    result = execute_run(cfg, run_dir, list(hc.overrides.task))
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun or result["status"] in (RunStatus.COMPLETED, RunStatus.STOPPED):
        print(run_summary(result, run_dir, job=hc.job.num if multirun else None), flush=True)
    if not multirun and result["status"] not in (
        RunStatus.COMPLETED,
        RunStatus.STOPPED,
    ):
        # A single run reports its failure as one clear message and a non-zero exit.
        raise SystemExit(
            f"glmlab: run {result['status']}: {result['error']} (run directory: {run_dir})"
        )
    return result
