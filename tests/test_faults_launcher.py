"""Faults in a side-by-side sweep (glmlab/cluster/pool.py, docs/RELIABILITY.md "Signals and
side-by-side sweeps"): a real 2-worker sweep in a subprocess, signalled as a terminal, a
user or the out-of-memory killer would. Each test waits for observable states (checkpoint
files, lock files), never for fixed sleeps, and checks what is on disk afterwards: every
running run checkpointed its current step (or stays resumable from its last checkpoint),
result.json statuses, the report and its counts, no temp file, no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from glmlab.runs.layout import checkpoint_step
from tests.conftest import TINY

pytestmark = pytest.mark.slow

# The tiny settings with room to interrupt: a checkpoint every 10 steps, no evaluation in
# between; `m${train.max_steps}_s${seed}` names the run directories.
_SET_HERE = ("train.max_steps", "train.eval_interval", "train.checkpoint_interval")
SWEEP = [
    *(o for o in TINY if not o.startswith(_SET_HERE)),
    "train.eval_interval=1000",
    "train.checkpoint_interval=10",
    "hydra.launcher.n_jobs=2",
    "hydra.sweep.dir=sw",
    "hydra.sweep.subdir=m${train.max_steps}_s${seed}",
    "-m",
]
WAIT_S = 300  # a loaded 2-core machine starts a worker and trains 10 steps well within this


class Sweep:
    """``python -m glmlab ARGS`` in its own session (a terminal's process group)."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.cwd = cwd
        self.sw = cwd / "sw"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "glmlab", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        )
        self.out = self.err = ""

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not ready():
            if self.proc.poll() is not None:
                self.finish()
                pytest.fail(
                    f"the sweep ended before {what}:\n{self.out[-3000:]}\n{self.err[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {what} in {WAIT_S} s")
            time.sleep(0.1)

    def checkpointed(self, *runs: str) -> None:
        self.wait_until(
            lambda: all(checkpoint_step(self.sw / r) for r in runs), f"checkpoints of {runs}"
        )

    def finish(self) -> int:
        out, err = self.proc.communicate(timeout=WAIT_S)
        self.out, self.err = out, err
        return self.proc.returncode


def worker_pid(run: Path) -> int:
    """The pid of the process that holds the run's lock (``pid N on host``)."""
    return int((run / ".lock").read_text().split()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_no_process_left(pids: set[int]) -> None:
    """The sweep's processes (workers, fork server) are gone soon after it exits."""
    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)], "processes of the sweep outlived it"


def assert_no_temps(sw: Path) -> None:
    assert not list(sw.rglob(".*.tmp")), list(sw.rglob(".*.tmp"))


def result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def assert_stopped_at_its_checkpoint(run: Path, signal_name: str) -> int:
    """The run recorded a stop at the step its checkpoint holds (its current step)."""
    res, step = result(run), checkpoint_step(run)
    assert res["status"] == "stopped", res
    assert step is not None and step >= 10 and res["step"] == step, (res, step)
    assert res["error"] == f"{signal_name}: checkpointed and stopped", res
    return step


def _interrupt(tmp_path: Path, send: Callable[[Sweep], None], seeds: str) -> tuple[Sweep, set]:
    """A sweep of 6-step runs and 3000-step runs; ``send`` once both first 3000-step runs
    have a checkpoint. Returns the ended sweep and the processes it had."""
    sweep = Sweep(tmp_path, *SWEEP, "train.max_steps=6,3000", f"seed={seeds}")
    sweep.checkpointed("m3000_s0", "m3000_s1")
    pids = descendants(sweep.proc.pid)
    assert {worker_pid(sweep.sw / "m3000_s0"), worker_pid(sweep.sw / "m3000_s1")} <= pids
    send(sweep)
    sweep.finish()
    return sweep, pids


def test_ctrl_c_to_the_process_group_checkpoints_every_running_run(tmp_path):
    """A terminal's Ctrl-C: both running runs checkpoint their current step, the pending
    run does not start, the report of what finished is written, each run's rerun is named."""
    sweep, pids = _interrupt(
        tmp_path, lambda s: os.killpg(s.proc.pid, signal.SIGINT), seeds="0,1,2"
    )
    assert sweep.proc.returncode == 130, sweep.err[-3000:]
    steps = [assert_stopped_at_its_checkpoint(sweep.sw / f"m3000_s{s}", "SIGINT") for s in (0, 1)]
    assert not (sweep.sw / "m3000_s2").exists()  # never started
    for seed in (0, 1, 2):
        assert result(sweep.sw / f"m6_s{seed}")["status"] == "completed"
    lines = sweep.out.splitlines()
    for line in (
        "  [run 0] m6_s0: nothing (completed)",
        f"  [run 3] m3000_s0: resume from step {steps[0]}",
        f"  [run 4] m3000_s1: resume from step {steps[1]}",
        "  [run 5] m3000_s2: start",
    ):
        assert line in lines, sweep.out
    assert lines[-1] == (
        "glmlab: sweep sw: 6 runs: 3 completed, 0 diverged, 0 failed, 1 not started, 2 stopped"
    ), sweep.out
    assert (sweep.sw / "report.md").exists() and "report: sw/report.md" in sweep.out
    assert "Traceback" not in sweep.err, sweep.err
    assert_no_temps(sweep.sw)
    assert_no_process_left(pids)


def test_sigint_to_the_sweep_process_alone_reaches_every_run(tmp_path):
    """`kill -INT <sweep pid>`: the workers get it from the sweep's process, checkpoint and
    stop; nothing trains on once it exited."""
    sweep, pids = _interrupt(tmp_path, lambda s: s.proc.send_signal(signal.SIGINT), seeds="0,1")
    assert sweep.proc.returncode == 130, sweep.err[-3000:]
    for seed in (0, 1):
        step = assert_stopped_at_its_checkpoint(sweep.sw / f"m3000_s{seed}", "SIGINT")
        assert f"  [run {2 + seed}] m3000_s{seed}: resume from step {step}" in sweep.out
    assert sweep.out.splitlines()[-1].endswith(
        "4 runs: 2 completed, 0 diverged, 0 failed, 2 stopped"
    )
    assert (sweep.sw / "report.md").exists()
    assert_no_temps(sweep.sw)
    assert_no_process_left(pids)


def test_sigterm_to_the_sweep_process_stops_every_run_and_exits_143(tmp_path):
    """SIGTERM to the sweep (`kill`, a batch system): no orphan trains the runs to the
    end afterwards (no process of the sweep is left); each is stopped at its checkpoint
    and the report is written."""
    sweep, pids = _interrupt(tmp_path, lambda s: s.proc.send_signal(signal.SIGTERM), seeds="0,1")
    assert sweep.proc.returncode == 143, sweep.err[-3000:]
    for seed in (0, 1):
        assert_stopped_at_its_checkpoint(sweep.sw / f"m3000_s{seed}", "SIGTERM")
    assert "interrupted by SIGTERM" in sweep.out
    assert (sweep.sw / "report.md").exists()
    assert_no_temps(sweep.sw)
    assert_no_process_left(pids)


def test_a_killed_worker_fails_only_its_own_run(tmp_path):
    """kill -9 of one worker (as the out-of-memory killer does): its run is recorded as
    failed with the signal and the step its checkpoint holds, the other run completes, the
    report is written; a rerun resumes the killed run from that checkpoint."""
    args = [*SWEEP, "train.max_steps=300", "seed=0,1"]
    sweep = Sweep(tmp_path, *args)
    sweep.checkpointed("m300_s0", "m300_s1")
    pids = descendants(sweep.proc.pid)
    os.kill(worker_pid(sweep.sw / "m300_s0"), signal.SIGKILL)
    assert sweep.finish() == 1, sweep.err[-3000:]
    killed, other = result(sweep.sw / "m300_s0"), result(sweep.sw / "m300_s1")
    assert killed["status"] == "failed" and killed["error"].startswith("SIGKILL: "), killed
    assert killed["step"] == checkpoint_step(sweep.sw / "m300_s0") >= 10, killed
    assert other["status"] == "completed" and other["step"] == 300, other
    assert "glmlab: [run 0] " in sweep.out and "failed at step" in sweep.out
    assert (
        sweep.out.splitlines()[-1] == "glmlab: sweep sw: 2 runs: 1 completed, 0 diverged, 1 failed"
    )
    assert (sweep.sw / "report.md").exists()
    assert "TerminatedWorkerError" not in sweep.err and "Traceback" not in sweep.err
    assert_no_temps(sweep.sw)
    assert_no_process_left(pids)

    again = Sweep(tmp_path, *args)
    assert again.finish() == 0, again.out[-3000:] + again.err[-3000:]
    assert result(sweep.sw / "m300_s0")["status"] == "completed"
    log = (sweep.sw / "m300_s0" / "app.log").read_text()
    assert f"checkpoint.pt at step {killed['step']}" in log and "resumed from" in log


def test_workers_of_a_killed_sweep_process_stop_at_their_checkpoint(tmp_path):
    """kill -9 of the sweep's own process: nobody is left to pass a signal on, so each
    worker notices that it is gone, checkpoints its step and stops (no orphan trains on)."""
    sweep = Sweep(tmp_path, *SWEEP, "train.max_steps=3000", "seed=0,1")
    sweep.checkpointed("m3000_s0", "m3000_s1")
    workers = {worker_pid(sweep.sw / f"m3000_s{s}") for s in (0, 1)}
    pids = descendants(sweep.proc.pid)
    sweep.proc.kill()
    sweep.finish()
    assert_no_process_left(workers | pids)
    for seed in (0, 1):
        assert_stopped_at_its_checkpoint(sweep.sw / f"m3000_s{seed}", "SIGTERM")
    assert_no_temps(sweep.sw)


def test_a_signal_to_one_worker_stops_only_its_run(tmp_path):
    """SIGTERM to one worker: that run stops at its checkpoint; the other completes and the
    sweep writes its report, exiting 1 (a run is unfinished)."""
    sweep = Sweep(tmp_path, *SWEEP, "train.max_steps=300", "seed=0,1")
    sweep.checkpointed("m300_s0", "m300_s1")
    os.kill(worker_pid(sweep.sw / "m300_s0"), signal.SIGTERM)
    assert sweep.finish() == 1, sweep.err[-3000:]
    step = assert_stopped_at_its_checkpoint(sweep.sw / "m300_s0", "SIGTERM")
    assert result(sweep.sw / "m300_s1")["status"] == "completed"
    assert f"stopped at step {step} by SIGTERM; a rerun resumes it" in sweep.out
    assert sweep.out.splitlines()[-1].endswith(
        "2 runs: 1 completed, 0 diverged, 0 failed, 1 stopped"
    )
    assert (sweep.sw / "report.md").exists()


def test_ctrl_c_to_a_sweep_one_at_a_time_writes_its_report_too(tmp_path):
    """hydra.launcher.n_jobs=1 (the runs in the sweep's process): the same ending."""
    args = [a if a != "hydra.launcher.n_jobs=2" else "hydra.launcher.n_jobs=1" for a in SWEEP]
    sweep = Sweep(tmp_path, *args, "train.max_steps=6,3000", "seed=0")
    sweep.checkpointed("m3000_s0")
    os.killpg(sweep.proc.pid, signal.SIGINT)
    assert sweep.finish() == 130, sweep.err[-3000:]
    step = assert_stopped_at_its_checkpoint(sweep.sw / "m3000_s0", "SIGINT")
    assert "  [run 0] m6_s0: nothing (completed)" in sweep.out.splitlines()
    assert f"  [run 1] m3000_s0: resume from step {step}" in sweep.out.splitlines()
    assert (sweep.sw / "report.md").exists()
    assert sweep.out.splitlines()[-1].endswith(
        "2 runs: 1 completed, 0 diverged, 0 failed, 1 stopped"
    )
