"""Through a real single-node Slurm cluster (scripts/slurm_cluster.sh): a sweep with
hydra-submitit-launcher's submitit_slurm launcher and its report, a failed job's logs,
DDP across a job's tasks, preempted jobs that resume to an uninterrupted run's end, and a
sweep submitted with ``glmlab submit`` that ends without anyone waiting for it: followed
with ``glmlab status`` and reported by ``glmlab collect``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glmlab.cluster.status import sweep_runs
from glmlab.cluster.submission import read_submission
from glmlab.io import read_jsonl
from glmlab.plugins.trackers import installed
from glmlab.train.checkpoint import load_checkpoint
from tests import tracker_readers
from tests.conftest import TINY, run_glmlab
from tests.test_distributed import RUN, assert_same_run

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm_cluster.sh"
# Small requests: the node has as many CPUs as this machine.
SLURM = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A running cluster (started here unless one already runs; stopped if started here)."""
    was_running = subprocess.run([SCRIPT, "status"], capture_output=True).returncode == 0
    proc = subprocess.run([SCRIPT, "start"], capture_output=True, text=True, timeout=120)
    if proc.returncode == 2:  # not root, or slurm-wlm/munge not installed
        pytest.skip(f"no Slurm cluster on this machine: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = re.search(r"SLURM_CONF=(\S+?)\)", proc.stdout).group(1)
    yield
    if previous is None:
        del os.environ["SLURM_CONF"]
    else:
        os.environ["SLURM_CONF"] = previous
    if not was_running:
        subprocess.run([SCRIPT, "stop"], capture_output=True, timeout=60)


def slurm(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout


def wait_until(condition: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def job_steps_here(job: str) -> bool:
    """Whether processes of ``job`` still run on this node (its slurmstepd)."""
    pattern = rf"slurmstepd: \[{job}\."
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


@pytest.fixture
def start_glmlab(tmp_path: Path) -> Iterator[Callable[..., Callable[[], None]]]:
    """``start_glmlab(args, name)`` runs ``python -m glmlab ARGS`` in the background (output
    in ``NAME.log``) and returns a function that waits for it to succeed. What still runs
    at teardown (after a failure) is killed."""
    procs: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> Callable[[], None]:
        log = tmp_path / f"{name}.log"
        with log.open("w") as out:
            command = [sys.executable, "-m", "glmlab", *args]
            procs.append(subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=out))
        proc = procs[-1]

        def succeeded() -> None:
            assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]

        return succeeded

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sweep_writes_its_report_and_a_failed_jobs_logs(slurm_cluster, tmp_path):
    proc = run_glmlab(
        ["-m", *TINY, *SLURM, "name=cluster", "positional.name=learned_2d,no_such_scheme"],
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-4000:]  # one job failed: the sweep exits 1
    assert proc.stdout.strip().splitlines()[-1].endswith("1 completed, 0 diverged, 1 failed")
    sweep = tmp_path / "sweeps" / "cluster"
    results = {
        r["status"]: r for r in (json.loads(p.read_text()) for p in sweep.glob("*/result.json"))
    }
    assert results.keys() == {"completed", "failed"}
    logs = results["failed"]["job_logs"]
    assert Path(logs["stderr"]).is_relative_to(sweep / ".submitit")
    assert "no positional plugin named 'no_such_scheme'" in Path(logs["stdout"]).read_text()
    report = (sweep / "report.md").read_text()
    assert "no positional plugin named 'no_such_scheme'" in report
    assert f"stdout `{logs['stdout']}`, stderr `{logs['stderr']}`" in report
    assert results["completed"]["step"] == 6


def test_job_with_two_tasks_trains_ddp_like_one_process(slurm_cluster, tmp_path, start_glmlab):
    one = start_glmlab([*RUN, "train.grad_accum=4", "hydra.run.dir=one"], "one")
    proc = run_glmlab(
        ["-m", *RUN, *SLURM, "train.grad_accum=2", "name=ddp", "hydra.launcher.tasks_per_node=2"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    one()
    (run_dir,) = (p.parent for p in (tmp_path / "sweeps" / "ddp").glob("*/result.json"))
    assert_same_run(tmp_path / "one", run_dir)


def test_preempted_job_resumes_to_the_uninterrupted_end(slurm_cluster, tmp_path, start_glmlab):
    run = [*RUN, "train.max_steps=600", "train.log_interval=10", "train.eval_interval=100"]
    run += ["train.checkpoint_interval=1000"]  # no periodic checkpoint to fall back on
    straight = start_glmlab([*run, "hydra.run.dir=straight"], "straight")
    # max_num_timeout=1: submitit requeues a job once after a timeout signal. The sweep
    # logs to TensorBoard: the requeued job must continue the same tracker run.
    tracked = ["tracker=[tensorboard]"] if installed("tensorboard") else []
    sweep = start_glmlab(
        ["-m", *run, *SLURM, *tracked, "hydra.launcher.max_num_timeout=1", "name=pre"], "sweep"
    )
    sweep_dir = tmp_path / "sweeps" / "pre"

    def last_step() -> int:
        # Whole lines only: the job may be writing the last one.
        lines = [
            ln for p in sweep_dir.glob("*/metrics.jsonl") for ln in p.read_text().split("\n")[:-1]
        ]
        return max((json.loads(line)["step"] for line in lines), default=0)

    tracker_ids: list[str] = []

    def preempt(command: list[str], after_step: int) -> int:
        """Send ``command JOBID`` once the job has logged ``after_step``; return the step
        its checkpoint holds when the job is back in the queue."""
        wait_until(lambda: last_step() >= after_step, f"step {after_step}")
        # This sweep's one job (others may share the cluster): submitit's folder names it.
        (job,) = (p.name for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit())
        slurm(*command, job)
        wait_until(
            lambda: slurm("squeue", "-h", "-j", job, "-o", "%T").strip() == "PENDING", "requeue"
        )
        # Slurm holds a requeued job for a while (Reason=BeginTime); start it sooner, but
        # only once the old instance's processes are gone (their late exit would end the new
        # one) and a whole second after its credential was revoked (slurmd refuses a launch
        # credential from the same second: "Job credential revoked").
        wait_until(lambda: not job_steps_here(job), "the old instance to end")
        # glmlab status while Slurm still holds it: requeued, waiting to run again (once it
        # is released below it may start at once, so this is checked first).
        (view,) = sweep_runs(sweep_dir)
        assert view.state == "pending" and view.requeues >= 1, view
        time.sleep(2)
        slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
        (checkpoint,) = sweep_dir.glob("*/checkpoint.pt")
        if tracked:
            (ids,) = sweep_dir.glob("*/trackers.json")
            tracker_ids.append(json.loads(ids.read_text())["tensorboard"])
        return load_checkpoint(checkpoint)["step"]

    # Slurm's requeue (SIGTERM, as for preemption): glmlab checkpoints and exits, Slurm requeues.
    first = preempt(["scontrol", "requeue"], after_step=20)
    # submitit's timeout signal (SIGUSR2): glmlab checkpoints, submitit's hook requeues.
    second = preempt(["scancel", "--signal=USR2"], after_step=first + 20)
    assert 20 <= first < second < 600

    sweep()
    straight()
    (run_dir,) = (p.parent for p in sweep_dir.glob("*/result.json"))
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    assert_same_run(tmp_path / "straight", run_dir, exact=True)  # no step lost or repeated
    job_out = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_0_log.*"))
    assert f"glmlab: preempted after step {first}" in job_out
    assert "Calling checkpoint method." in job_out and "Requeued job" in job_out
    assert job_out.count("Starting with JobEnvironment") == 3
    (view,) = sweep_runs(sweep_dir)
    assert (view.state, view.requeues) == ("completed", 2)  # one run directory throughout
    if tracked:  # one tracker run across both requeues, its series continuous
        run_id = json.loads((run_dir / "trackers.json").read_text())["tensorboard"]
        assert tracker_ids == [run_id, run_id]
        series = tracker_readers.tensorboard_scalars(run_dir / run_id)
        logged = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
        assert [step for step, _ in series["train/loss"]] == logged == list(range(10, 601, 10))


def glmlab_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "glmlab.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_submitted_sweep_is_followed_and_collected(slurm_cluster, tmp_path):
    """glmlab submit returns once Slurm has the jobs; of three runs one completes, one is
    cancelled (scancel) and one reaches its time limit; status and collect say which."""
    steps = ["train.log_interval=10", "train.eval_interval=100000"]
    steps += ["train.checkpoint_interval=100000", "train.max_steps=6,100000,200000"]
    # Slurm may send the USR2 warning up to a minute early: 2 minutes leave time to train.
    limits = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=10"]
    proc = glmlab_cli(["submit", *TINY, *SLURM[1:3], *limits, *steps, "name=async"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep = tmp_path / "sweeps" / "async"
    jobs = {
        next(o for o in j.overrides if o.startswith("train.max_steps=")).split("=")[1]: j
        for j in read_submission(sweep).values()
    }
    assert set(jobs) == {"6", "100000", "200000"}
    assert all(f"{j.job_id}\t" in proc.stdout for j in jobs.values())  # job ids printed
    ids = {j.job_id for j in jobs.values()}

    def queued() -> set[str]:
        return set(slurm("squeue", "-h", "-r", "-o", "%i").split()) & ids

    # Nothing waits on the submitting side: the long jobs are still queued or running.
    assert {jobs["100000"].job_id, jobs["200000"].job_id} <= queued()
    cancel = jobs["100000"]

    def cancel_view():
        return next(v for v in sweep_runs(sweep) if v.name == cancel.run)

    wait_until(lambda: (cancel_view().progress.step or 0) >= 20, "training", timeout=180)
    status = glmlab_cli(["status", str(sweep)], tmp_path)
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith(cancel.run))
    assert line.split()[1] == "running" and int(line.split()[2]) >= 20, status.stdout
    slurm("scancel", cancel.job_id)
    wait_until(lambda: not queued(), "every job to end", timeout=300)

    states = {v.name: v.state for v in sweep_runs(sweep)}
    assert states == {
        jobs["6"].run: "completed",
        cancel.run: "cancelled",
        jobs["200000"].run: "timed_out",
    }
    said = {k: json.loads((sweep / j.run / "result.json").read_text()) for k, j in jobs.items()}
    assert "SIGTERM" in said["100000"]["error"]  # it checkpointed and said why it stopped
    assert said["200000"]["status"] == "timed_out"  # told by the job itself
    collected = glmlab_cli(["collect", str(sweep)], tmp_path)
    assert collected.returncode == 1, collected.stdout + collected.stderr  # not all completed
    assert "not finished (2 of 3)" in collected.stdout
    report = (sweep / "report.md").read_text()
    assert "- cancelled: " in report and "- timed_out: " in report
    assert Path(cancel.stderr).name in report  # the cancelled job's log, named


def test_ladder_is_submitted_in_two_phases_and_collected(slurm_cluster, tmp_path):
    """glmlab submit +ladder=...: the first invocation queues the grid (2 variants x 3 rungs
    x 3 lrs); a rerun while it is queued or running submits nothing twice; a rerun once it
    finished chooses each arm's lr and queues the seed runs at it; glmlab collect writes
    the ladder report. (The held-out rung is tests/test_ladder_sweep.py's: here 3 rungs.)"""
    from tests.test_ladder_sweep import SECTIONS, TINY_LADDER

    three = "hydra.sweeper.ladder.rungs=[{n_layers:1,dim:16,n_heads:2},{n_layers:1,dim:24,n_heads:2},{n_layers:1,dim:32,n_heads:2}]"
    tiny = [
        o
        for o in TINY_LADDER
        if not o.startswith(("hydra.sweeper.ladder.rungs=", "hydra.sweeper.ladder.holdout="))
    ]
    command = ["submit", "+experiment=span_shuffle_ablation", "+ladder=cpu", *tiny, three]
    command += ["hydra.sweeper.ladder.holdout=none", *SLURM[1:3], "name=ladder"]
    sweep = tmp_path / "sweeps" / "ladder"

    def job_ids() -> set[str]:
        return {j.job_id for j in read_submission(sweep).values()}

    def wait_for_queue(ids: set[str]) -> None:
        def done() -> bool:
            return not set(slurm("squeue", "-h", "-r", "-o", "%i").split()) & ids

        wait_until(done, "the submitted jobs to end", timeout=600)

    first = glmlab_cli(command, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "glmlab: ladder: phase 1: 18 grid runs submitted" in first.stdout, first.stdout
    grid = job_ids()
    assert len(grid) == 18
    assert all("seed=1000" in j.overrides for j in read_submission(sweep).values())

    again = glmlab_cli(command, tmp_path)  # while the grid is queued or running
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "glmlab: ladder: phase 1: 0 grid runs submitted" in again.stdout, again.stdout
    assert job_ids() == grid  # nothing submitted twice

    wait_for_queue(grid)
    second = glmlab_cli(command, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "glmlab: ladder: phase 2: 12 seed runs submitted" in second.stdout, second.stdout
    ladder = json.loads((sweep / "ladder.json").read_text())
    assert ladder["phase"] == 2
    chosen = ladder["plan"]["chosen"]
    # 6 arms (2 variants x 3 rungs), each lr inside the grid's range (the parabola's minimum)
    assert len(chosen) == 6 and all(1e-3 <= lr <= 1e-2 for lr in chosen.values())
    seeds = [j for j in read_submission(sweep).values() if j.job_id not in grid]
    assert len(seeds) == 12
    assert {o for j in seeds for o in j.overrides if o.startswith("seed=")} == {"seed=0", "seed=1"}
    lrs = {float(o.split("=")[1]) for j in seeds for o in j.overrides if o.startswith("train.lr=")}
    assert lrs == set(chosen.values())  # the seeds train at the chosen learning rates

    wait_for_queue({j.job_id for j in seeds})
    collected = glmlab_cli(["collect", str(sweep)], tmp_path)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    report = (sweep / "report.md").read_text()
    for section in SECTIONS[1:]:
        assert ("Prediction check" in section) != (section in report), section
    assert "missing" not in report.split("### Per-rung differences")[0]
