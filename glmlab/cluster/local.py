"""The default launcher of a local sweep (``hydra/launcher=glmlab_local``): independent runs
side by side, one process each, as many at once as the cores this process may use hold.

A sweep at the CPU scale trains with one torch thread per run (``train.threads: 1``), so on
a machine with spare cores its runs go side by side in worker processes that glmlab starts
and watches itself (:mod:`glmlab.cluster.pool`), and a 2-core machine runs two at once.
How many:

- ``hydra.launcher.n_jobs`` when set (an integer >= 1, checked before any work);
- otherwise (``null``, the default) :func:`concurrency`: the cores of
  ``os.sched_getaffinity`` (what a Slurm allocation or ``taskset`` grants, not the machine's
  count) divided by the torch threads of one run; 1 when the runs train on a GPU (one GPU is
  never shared by default), when ``train.threads`` is unset (torch then takes every core
  itself), under ``torchrun`` (each rank runs the sweep: its ranks must meet in the same
  run) and on a 1-core machine.

One at a time, the runs go in this process, exactly as Hydra's basic launcher runs them.
Side by side, each run prints its closing line as usual, its log lines go to its own
``app.log`` (the terminal shows warnings and errors), progress bars are off
(``train.progress=false``, which names no run and changes no identity: two bars on one
terminal garble each other), and the results come back to this process: a run whose failure
could not be recorded in its directory is counted in the sweep's last line as it is
sequentially. Runs are the same either way: a run's batches are a pure function of its seed
and step, and it sets its own torch thread count.

Either way, a signal to the sweep (Ctrl-C, SIGTERM) stops each running run after its
current step's checkpoint, starts no new run and raises :class:`SweepInterrupted`, with
which the app writes the report of what finished and says what a rerun does
(docs/RELIABILITY.md, "Signals and side-by-side sweeps").

``glmlab submit`` replaces this launcher with the Slurm one (``submitit_slurm_async``).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from glmlab.cluster.jobs import SweepInterrupted, planned_runs
from glmlab.runs.result import RunResult

__all__ = [
    "LAUNCHER",
    "NO_PROGRESS",
    "TARGET",
    "Launch",
    "LocalLauncherConf",
    "SweepInterrupted",
    "available_cores",
    "check_n_jobs",
    "concurrency",
    "launch",
    "launch_of",
    "register_config",
    "unrecorded",
]

log = logging.getLogger("glmlab")

LAUNCHER = "glmlab_local"
TARGET = "hydra_plugins.glmlab_cluster.LocalParallelLauncher"
# The override each side-by-side run gets: outside a run's identity (marked in the schema,
# glmlab/config/schema.py: neither its fingerprint nor its directory name holds it).
NO_PROGRESS = "train.progress=false"
# How a sweep that runs one at a time in this process sees a signal its run handled: the
# trainer exits 130 after a Ctrl-C's checkpoint; SIGTERM ends as SystemExit(128 + 15).
_EXIT_SIGNALS = {128 + signal.SIGINT: signal.SIGINT, 128 + signal.SIGTERM: signal.SIGTERM}


@dataclass(frozen=True)
class Launch:
    """How a local launch of this process ran a sweep's runs: ``runs``, ``at_once`` side by
    side, in ``wall_s`` seconds (the sweep's closing summary says so)."""

    runs: int
    at_once: int
    wall_s: float

    def phrase(self) -> str:
        """``6 runs, 2 at once, in 312 s`` (``one at a time`` when sequential)."""
        how = "one at a time" if self.at_once == 1 else f"{self.at_once} at once"
        runs = "1 run" if self.runs == 1 else f"{self.runs} runs"
        return f"{runs}, {how}, in {self.wall_s:.0f} s"


# The local launches of this process, by sweep directory (a sweep's closing summary).
_launches: dict[str, Launch] = {}
# Runs of the worker processes whose failure could not be written to their directory.
_unrecorded: list[RunResult] = []


@dataclass
class LocalLauncherConf:
    """``hydra/launcher=glmlab_local``: ``n_jobs`` runs at once (null: :func:`concurrency`)."""

    _target_: str = TARGET
    n_jobs: int | None = None


def register_config() -> None:
    """Store the launcher's config in Hydra's ConfigStore (``hydra/launcher=glmlab_local``)."""
    ConfigStore.instance().store(
        group="hydra/launcher", name=LAUNCHER, node=LocalLauncherConf, provider="glmlab"
    )


def available_cores() -> int:
    """The cores this process may run on (its affinity mask; the CPU count where the
    platform has no affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _on_accelerator(device: str) -> bool:
    """Whether runs with ``train.device=device`` train on a GPU (``auto``: when CUDA or MPS
    is there, as the trainer picks)."""
    if device != "auto":
        return device != "cpu"
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps is not None and mps.is_available())


def check_n_jobs(n_jobs: Any) -> None:
    """Refuse an ``hydra.launcher.n_jobs`` below 1 with one line (ValueError)."""
    if n_jobs is not None and int(n_jobs) < 1:
        raise ValueError(
            f"hydra.launcher.n_jobs={n_jobs}: must be an integer >= 1 "
            "(or null: as many as the cores allow)"
        )


def concurrency(config: DictConfig, n_runs: int, cores: int | None = None) -> int:
    """How many of a sweep's ``n_runs`` runs go at once on this machine: the launcher's
    ``n_jobs`` if set, else ``cores // train.threads`` on a CPU and 1 on a GPU (or with
    ``train.threads`` unset, or under torchrun); never more than ``n_runs`` nor less than 1."""
    chosen = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    check_n_jobs(chosen)
    if chosen is not None:
        n = int(chosen)
    else:
        device = str(OmegaConf.select(config, "train.device", default="auto"))
        threads = OmegaConf.select(config, "train.threads", default=None)
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if threads is None or distributed or _on_accelerator(device):
            n = 1
        else:
            n = (available_cores() if cores is None else cores) // int(threads)
    return max(1, min(n, n_runs))


def launch_of(sweep_dir: str | os.PathLike[str]) -> Launch | None:
    """How this process's local launcher ran the sweep in ``sweep_dir`` (None: it did not;
    several launches of one sweep add up)."""
    return _launches.get(os.path.abspath(sweep_dir))


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
    """Run the sweep's jobs, :func:`concurrency` at once; return their ``JobReturn``-s in
    order (the work of :class:`hydra_plugins.glmlab_cluster.LocalParallelLauncher`). A
    signal that stopped the sweep raises :class:`SweepInterrupted` once no run is left."""
    from glmlab.cluster.pool import run_side_by_side

    n_jobs = concurrency(launcher.config, len(job_overrides))
    sweep_dir = str(launcher.config.hydra.sweep.dir)
    start = time.perf_counter()
    launched = len(job_overrides)
    try:
        if n_jobs == 1:
            return _one_at_a_time(launcher, job_overrides, initial_job_idx)
        print(
            f"glmlab: sweep {sweep_dir}: {len(job_overrides)} runs, {n_jobs} at once, one "
            "process each (each run logs to its app.log)",
            flush=True,
        )
        quiet = [[*overrides, NO_PROGRESS] for overrides in job_overrides]
        runs = run_side_by_side(launcher, quiet, initial_job_idx, n_jobs)
        _collect_unrecorded(runs)
        return runs
    except SweepInterrupted as exc:
        launched = exc.started if exc.started is not None else launched
        raise
    finally:
        _record(sweep_dir, launched, n_jobs, start)


def _one_at_a_time(launcher: Any, job_overrides: Sequence[Sequence[str]], first: int) -> Any:
    """The jobs in this process, one after the other (Hydra's basic launcher); a Ctrl-C or
    SIGTERM that stopped the current run raises :class:`SweepInterrupted`."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    sequential = BasicLauncher()
    sequential.setup(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=launcher.config,
    )
    try:
        with _sigterm_exits():
            return sequential.launch(job_overrides, first)
    except KeyboardInterrupt:
        signum = signal.SIGINT
    except SystemExit as exc:
        if not isinstance(exc.code, int) or exc.code not in _EXIT_SIGNALS:
            raise
        signum = _EXIT_SIGNALS[exc.code]
    runs = planned_runs(launcher, job_overrides, first)
    raise SweepInterrupted(signum, launcher.config, runs) from None


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` in this process (a run that is training first
    checkpoints its step: the trainer hands the signal on after it), so the sweep ends with
    its report instead of dying silently."""
    from threading import current_thread, main_thread

    if current_thread() is not main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _record(sweep_dir: str, runs: int, at_once: int, start: float) -> None:
    """Add a launch of ``runs`` runs to the sweep's :class:`Launch` (a sweeper may launch a
    sweep in several batches)."""
    key = os.path.abspath(sweep_dir)
    wall = time.perf_counter() - start
    before = _launches.get(key)
    if before is not None:
        runs, at_once, wall = runs + before.runs, max(at_once, before.at_once), wall + before.wall_s
    _launches[key] = Launch(runs=runs, at_once=at_once, wall_s=wall)


def _collect_unrecorded(runs: Sequence[Any]) -> None:
    """Keep the worker processes' unrecorded failures in this process for the sweep's
    count (:func:`glmlab.cli.app.finish_sweep`; a worker's own list of them dies with it)."""
    from hydra.core.utils import JobStatus

    for run in runs:
        if run.status == JobStatus.COMPLETED and isinstance(run._return_value, RunResult):
            if not run._return_value.recorded:
                _unrecorded.append(run._return_value)


def unrecorded() -> list[RunResult]:
    """The results, returned by worker processes, of runs whose failure could not be
    written to their directory (a refused config change, a read-only directory)."""
    return list(_unrecorded)
