"""A local sweep's runs side by side in worker processes that glmlab starts and watches
(one process per run, :mod:`glmlab.cluster.worker`): at most ``n_jobs`` at once, each run's
outcome back in this process, and the faults of one process confined to its own run.

- A worker that dies without answering (``kill -9``, the out-of-memory killer, a crash)
  fails its own run only: its ``result.json`` records the failure, the signal and the step
  its checkpoint holds (when the run had claimed its directory), its temp files are removed,
  and the other runs go on; the sweep's report is written as usual.
- SIGINT or SIGTERM to this process (a terminal's Ctrl-C, ``kill``): passed on to every
  running worker, which checkpoints its current step and stops; no new run starts; this
  process waits for them and raises :class:`~glmlab.cluster.jobs.SweepInterrupted`. A
  second signal is passed on again (a second Ctrl-C stops a run at once, from its last
  checkpoint); a third kills the workers (their last checkpoints stand). No worker outlives
  this process: each stops itself when this process is gone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from threading import current_thread, main_thread
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from glmlab.cluster.jobs import PlannedRun, SweepInterrupted, job_config, planned_runs, run_dir_of
from glmlab.io import clean_stale_temps
from glmlab.runs.layout import IDENTITY, RunStatus, checkpoint_step
from glmlab.runs.lock import RunLock, RunLocked
from glmlab.runs.naming import variant_overrides
from glmlab.runs.result import RunResult, one_line, read_result, write_result

__all__ = ["run_side_by_side"]

# Seconds a worker gets to stop once told (a third signal, or this process failing).
STOP_WAIT_S = 60.0


@dataclass
class _Worker:
    """A running job: its run, config, process, the end its answer comes on, the end whose
    closing tells it this process is gone, and its run's identity file before it started."""

    run: PlannedRun
    config: Any
    process: Any
    results: Connection
    alive: Connection
    identity_before: tuple[int, int] | None
    message: tuple[str, Any] | None = None


class _Signals:
    """SIGINT and SIGTERM to this process while runs go side by side: recorded, and passed
    on to the workers by :func:`run_side_by_side` (never acted on inside the handler)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.passed_on = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if current_thread() is main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def pass_on(self, running: list[_Worker]) -> None:
        """Tell the workers about the signals received since the last call."""
        for signum in self.received[self.passed_on :]:
            self.passed_on += 1
            name = signal.Signals(signum).name
            if self.passed_on == 1:
                again = " (Ctrl-C again: stop at once, from the last checkpoint)"
                print(
                    f"glmlab: {name}: each running run stops after its current step's "
                    f"checkpoint; no new run starts{again if signum == signal.SIGINT else ''}",
                    file=sys.stderr,
                    flush=True,
                )
            for worker in running:
                if self.passed_on <= 2:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.process.pid, signum)
                else:
                    worker.process.kill()


def _preload(launcher: Any) -> list[str]:
    """What every run imports, imported once by the fork server: the worker, the task's
    module, the Hydra callbacks' modules and glmlab's built-in plugins (torch with them).
    Third-party plugins load in each run (an error there fails that run, not the server)."""
    from importlib.metadata import entry_points

    from glmlab.plugin.hookspecs import PROJECT

    modules = ["glmlab.cluster.worker", getattr(launcher.task_function, "__module__", "")]
    callbacks = getattr(launcher.hydra_context.callbacks, "callbacks", [])
    modules += [type(callback).__module__ for callback in callbacks]
    modules += [e.module for e in entry_points(group=PROJECT) if e.module.startswith("glmlab.")]
    return [m for m in dict.fromkeys(modules) if m and m != "__main__"]


def _context(launcher: Any) -> Any:
    """Worker processes forked from a server that imported what runs need (torch, the
    plugins) once; spawned where the platform has no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_preload(launcher))
    return ctx


def _identity_stamp(run_dir: Path) -> tuple[int, int] | None:
    """The run's identity file as a (inode, mtime) stamp: a run that claims its directory
    writes the file anew (glmlab/cli/run.py), so a changed stamp means it did."""
    try:
        st = (run_dir / IDENTITY).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _start(ctx: Any, shared: bytes, launcher: Any, overrides: Sequence[str], num: int) -> _Worker:
    from glmlab.cluster.worker import work

    config = job_config(launcher, overrides, num)
    run = PlannedRun(num, list(overrides), run_dir_of(config), config.get("seed"))
    results_in, results_out = ctx.Pipe(duplex=False)
    alive_in, alive_out = ctx.Pipe(duplex=False)
    before = _identity_stamp(run.run_dir)
    process = ctx.Process(
        target=work, args=(shared, config, results_out, alive_in), name=f"glmlab run {num}"
    )
    process.start()
    results_out.close()  # this process keeps only its own ends
    alive_in.close()
    return _Worker(run, config, process, results_in, alive_out, before)


def _job_return(
    worker: _Worker,
    value: Any,
    status: JobStatus = JobStatus.COMPLETED,
    task_name: str | None = None,
    working_dir: str | None = None,
) -> JobReturn:
    """The JobReturn of a worker's job: its outcome (``value``, what the task returned or
    a failure record) with the configs this process composed for it."""
    from omegaconf import OmegaConf

    task = OmegaConf.masked_copy(worker.config, [k for k in worker.config if k != "hydra"])
    return JobReturn(
        overrides=worker.run.overrides,
        cfg=task,
        hydra_cfg=OmegaConf.create({"hydra": worker.config.hydra}),
        working_dir=working_dir or os.getcwd(),
        task_name=task_name or str(worker.config.hydra.job.name),
        status=status,
        _return_value=value,
    )


def _dead(worker: _Worker) -> JobReturn:
    """The run of a worker that ended without answering: recorded as failed in its
    directory (if it had claimed it and holds no finished result), else returned with
    ``recorded: false`` for the sweep's count."""
    run, code = worker.run, worker.process.exitcode
    cause = (
        f"{signal.Signals(-code).name}: its process was killed (the out-of-memory killer "
        "sends SIGKILL)"
        if code is not None and code < 0
        else f"its process exited with status {code} without a result"
    )
    if worker.message is not None and worker.message[0] == "error":
        cause += f" ({one_line(str(worker.message[1]).strip().splitlines()[-1], 200)})"
    result = _result_of(run, RunStatus.FAILED.value, 0, cause)
    recorded = False
    if _identity_stamp(run.run_dir) not in (None, worker.identity_before):  # claimed
        try:
            with RunLock(run.run_dir, wait=False):
                finished = read_result(run.run_dir)
                if finished is not None and finished.finished:  # it ended after all
                    return _job_return(worker, finished)
                clean_stale_temps(run.run_dir)  # of the write it was killed in
                step = checkpoint_step(run.run_dir)
                result.step = step or 0
                result.error += (
                    f"; the checkpoint holds step {step}: a rerun resumes from it"
                    if step
                    else "; no checkpoint: a rerun starts it afresh"
                )
                write_result(run.run_dir, result)
                recorded = True
        except (RunLocked, OSError) as exc:
            result.error += f"; and its result could not be written: {exc}"
    print(
        f"glmlab: {run.label}: failed at step {result.step}; error: {result.error} ({run.run_dir})",
        flush=True,
    )
    result.recorded = recorded
    return _job_return(worker, result)


def _result_of(run: PlannedRun, status: str, step: int, error: str) -> RunResult:
    """The result this process records for a run its worker could not record itself."""
    return RunResult(
        status=status,
        step=step,
        error=error,
        seed=run.seed,
        overrides=sorted(run.overrides),
        variant=variant_overrides(run.overrides),
        run_dir=str(run.run_dir),
    )


def _stopped(worker: _Worker, signum: int | None) -> JobReturn:
    """The run of a worker that a signal of its own stopped (the sweep goes on): what its
    directory records (the trainer wrote it, as stopped at its checkpoint)."""
    run = worker.run
    on_disk = read_result(run.run_dir)
    name = signal.Signals(signum).name if signum else "a signal"
    result = on_disk or _result_of(
        run,
        RunStatus.STOPPED.value,
        checkpoint_step(run.run_dir) or 0,
        f"{name} before training or between runs",
    )
    after = "; a rerun resumes it" if not result.finished else ""
    print(
        f"glmlab: {run.label}: {result.status} at step {result.step} by {name}{after} "
        f"({run.run_dir})",
        flush=True,
    )
    return _job_return(worker, result)


def _receive(worker: _Worker) -> None:
    with contextlib.suppress(EOFError, OSError):
        while worker.results.poll():
            worker.message = worker.results.recv()


def _close(worker: _Worker) -> None:
    worker.process.join()
    worker.results.close()
    worker.alive.close()  # after the worker ended: its watcher must not read this as our exit


def _stop_all(running: list[_Worker], signum: int = signal.SIGTERM) -> None:
    """Stop every worker (after its step's checkpoint), killing those that do not end in
    :data:`STOP_WAIT_S`; remove the temp files of killed writes."""
    for worker in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.process.pid, signum)
    for worker in running:
        worker.process.join(STOP_WAIT_S)
        if worker.process.is_alive():
            worker.process.kill()
        _close(worker)
        _clean_after_kill(worker)


def _clean_after_kill(worker: _Worker) -> None:
    if worker.process.exitcode == -signal.SIGKILL:
        with contextlib.suppress(RunLocked, OSError), RunLock(worker.run.run_dir, wait=False):
            clean_stale_temps(worker.run.run_dir)


def run_side_by_side(
    launcher: Any, job_overrides: Sequence[Sequence[str]], first: int, n_jobs: int
) -> list[JobReturn]:
    """Run the jobs, ``n_jobs`` at once, each in its own worker process; return their
    JobReturns in order (a run that could not record its failure in its directory returns
    its result with ``recorded: false``, as :func:`glmlab.cli.run.execute_run` does).
    Raises :class:`SweepInterrupted` after a signal, once every running run stopped."""
    import cloudpickle
    from hydra.core.singleton import Singleton

    ctx = _context(launcher)
    shared = cloudpickle.dumps(
        (launcher.hydra_context, launcher.task_function, Singleton.get_state())
    )
    todo = deque((first + i, list(o)) for i, o in enumerate(job_overrides))
    returns: dict[int, JobReturn] = {}
    started: list[PlannedRun] = []
    running: list[_Worker] = []
    with _Signals() as signals:
        try:
            while todo or running:
                while todo and len(running) < n_jobs and not signals.received:
                    num, overrides = todo.popleft()
                    running.append(_start(ctx, shared, launcher, overrides, num))
                    started.append(running[-1].run)
                if not running:
                    break
                wait([w.results for w in running] + [w.process.sentinel for w in running], 0.5)
                for worker in list(running):
                    _receive(worker)  # a large answer blocks its sender until read
                    if worker.process.is_alive():
                        continue
                    _receive(worker)  # what it sent just before it ended
                    running.remove(worker)
                    _close(worker)
                    if worker.message is not None and worker.message[0] == "done":
                        status, value, name, where = worker.message[1]
                        returns[worker.run.num] = _job_return(
                            worker, value, JobStatus[status], name, where
                        )
                    elif worker.message is not None and worker.message[0] == "interrupted":
                        if not signals.received:  # a signal to this worker alone
                            returns[worker.run.num] = _stopped(worker, worker.message[1])
                    elif signals.received:  # killed while stopping: the last checkpoint stands
                        _clean_after_kill(worker)
                    else:
                        returns[worker.run.num] = _dead(worker)
                signals.pass_on(running)
        except BaseException:
            _stop_all(running)
            raise
    if signals.received:
        rest = planned_runs(launcher, [o for _, o in todo], todo[0][0]) if todo else []
        runs = sorted([*started, *rest], key=lambda r: r.num)
        raise SweepInterrupted(signals.received[0], launcher.config, runs, len(started))
    return [returns[first + i] for i in range(len(job_overrides))]
