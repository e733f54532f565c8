"""The Hydra application behind ``python -m glmlab``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from glmlab.cli.run import execute_run
from glmlab.cli.summary import run_summary
from glmlab.cluster.launcher import install as install_launcher
from glmlab.cluster.local import unrecorded as unrecorded_in_workers
from glmlab.config.scale import ScaleChoice
from glmlab.data.cache import STALE_TEMP_AGE_S
from glmlab.io import clean_stale_temps
from glmlab.ladder.plugin import install as install_ladder
from glmlab.runs.layout import RunStatus, checkpoint_step
from glmlab.runs.naming import register_resolvers
from glmlab.runs.result import (
    RunResult,
    outcome_counts,
    outcome_line,
    read_result,
    run_statuses,
    sweep_exit_status,
)

register_resolvers()
install_launcher()  # hydra/launcher=submitit_slurm_async
install_ladder()  # hydra/sweeper=glmlab_ladder (the ladder files select it)

# Runs of this process whose failure could not be written to their directory (a refused
# config change, a read-only directory): the sweep's count adds them (and those of a
# parallel sweep's worker processes, glmlab.cluster.local).
_unrecorded: list[RunResult] = []
_sweep_exit: list[int] = []
# The scale the command line chose (glmlab.cli.help.prepare_argv), for a single run's summary.
_scale: list[ScaleChoice] = []


def remember_scale(choice: ScaleChoice | None) -> None:
    """Keep the scale the command line runs at (None: an experiment's own), for the summary."""
    _scale[:] = [choice] if choice is not None else []


@hydra.main(version_base="1.3", config_path="pkg://glmlab.conf", config_name="config")
def main(cfg: DictConfig) -> RunResult:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    result = execute_run(cfg, run_dir, list(hc.overrides.task), sweep=sweep)
    if not result.recorded:
        _unrecorded.append(result)
    if sweep or result.status in (RunStatus.COMPLETED, RunStatus.STOPPED):
        job = hc.job.num if sweep else None
        print(
            run_summary(result, run_dir, job=job, scale=_scale[0] if _scale else None), flush=True
        )
    if not sweep and result.status not in (RunStatus.COMPLETED, RunStatus.STOPPED):
        # A single run reports its failure as one clear message and a non-zero exit.
        where = (
            "nothing was written"
            if not result.recorded and not run_dir.exists()
            else f"run directory: {run_dir}"
        )
        raise SystemExit(f"glmlab: run {result.status}: {result.error} ({where})")
    return result


# The status the closing line gives a run of an interrupted sweep that never started.
NOT_STARTED = "not started"


def not_recorded() -> list[RunResult]:
    """This sweep's runs whose outcome could not be written to their directory (another
    config's run is there and was refused, or the directory cannot be written), from this
    process and the side-by-side workers: the directory does not show what this sweep did."""
    return [*_unrecorded, *unrecorded_in_workers()]


def finish_sweep(sweep_dir: str | Path, planned: Sequence[str | Path] = ()) -> int:
    """After a sweep's report: print how many runs ended how (the last line) and set the
    exit status of ``python -m glmlab -m`` (:func:`glmlab.runs.result.sweep_exit_status`).
    Each run directory counts once: a run this sweep could not record there counts as
    failed (not as the other run the directory holds); ``planned`` runs of an interrupted
    sweep that have no directory count as not started."""
    statuses: dict[str, str] = {}
    if Path(sweep_dir).is_dir():
        statuses = {os.path.abspath(d): s for d, s in run_statuses(sweep_dir).items()}
        clean_stale_temps(sweep_dir, older_than_s=STALE_TEMP_AGE_S)  # of killed report writes
    for run_dir in planned:
        statuses.setdefault(os.path.abspath(run_dir), NOT_STARTED)
    for result in not_recorded():
        statuses[os.path.abspath(str(result.run_dir))] = RunStatus.FAILED.value
        print(f"glmlab: run {result.run_dir} failed (not recorded there): {result.error}")
    code = sweep_exit_status(statuses.values())
    counts = outcome_counts(statuses.values())
    _sweep_exit.append(code)
    print(f"glmlab: sweep {sweep_dir}: {outcome_line(counts)}")
    return code


def rerun_action(run_dir: str | Path) -> str:
    """What rerunning the same command does for the run in ``run_dir``: ``nothing
    (completed)``, ``resume from step N`` (its checkpoint's) or ``start``."""
    result = read_result(run_dir)
    if result is not None and result.finished:
        return f"nothing ({result.status})"
    step = checkpoint_step(run_dir)
    return f"resume from step {step}" if step else "start"


def exit_code() -> int:
    """The status ``python -m glmlab`` exits with: the last sweep's (0 after a single run,
    which reports a failure by raising SystemExit itself)."""
    return _sweep_exit[-1] if _sweep_exit else 0
