"""glmlab status / collect / submit without a cluster: Slurm's output (recorded on the test
cluster, tests/fixtures/slurm/), the state rule, the report of a half-finished sweep, the
exit status, array chunking and what a job records when a signal stops it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from glmlab.cli.collect import collect
from glmlab.cli.main import main as cli_main
from glmlab.cluster import exit_reason, slurm
from glmlab.cluster.exit_reason import failure_status, interruption, log_reason, slurm_job
from glmlab.cluster.slurm import (
    SlurmJob,
    expand_task_ids,
    max_array_size,
    parse_config,
    parse_jobcomp,
    parse_sacct,
    parse_scontrol_jobs,
    query_jobs,
)
from glmlab.cluster.status import (
    LiveState,
    infer_state,
    last_progress,
    render_status,
    sweep_runs,
    watch,
)
from glmlab.cluster.submission import SUBMISSION, SubmittedJob, read_submission, record_submission
from glmlab.cluster.submit import chunks, run_dir_names, share_parallelism
from glmlab.cluster.validate import check_batch
from glmlab.io import write_json_atomic
from glmlab.runs.layout import RunStatus
from glmlab.runs.naming import register_resolvers, run_dir_name
from glmlab.runs.result import RunResult, sweep_exit_status
from tests.conftest import TINY, run_glmlab

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
TIME_LIMIT_LOG = (
    "slurmstepd-vm: error: *** JOB 4 ON vm CANCELLED AT 2026-11-27T10:39:46 DUE TO TIME LIMIT ***"
)
CANCEL_LOG = "slurmstepd-vm: error: *** JOB 5 ON vm CANCELLED AT 2026-11-27T10:38:27 ***"
OOM_LOG = (
    "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=31.0. Some of your processes "
    "may have been killed by the cgroup out-of-memory handler."
)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def job(state: str, restarts: int = 0, reason: str = "") -> SlurmJob:
    return SlurmJob("7_0", state, reason=reason, restarts=restarts, source="test")


# -- Slurm's output ------------------------------------------------------------------------


def test_scontrol_jobs_expand_pending_array_ranges_and_keep_restarts():
    jobs = parse_scontrol_jobs(fixture("scontrol_show_job.txt"))
    assert jobs["12_0"].state == "PENDING" and jobs["12_0"].restarts == 1  # requeued
    assert jobs["12_0"].reason == "JobArrayTaskLimit"
    assert jobs["12_1"].running and jobs["12_2"].running
    assert jobs["12_3"].state == jobs["12_4"].state == "PENDING"  # "ArrayTaskId=3-4%2"
    assert "12_5" not in jobs
    assert jobs["9_1"].state == "CANCELLED" and not jobs["9_1"].live
    assert all(j.source == "scontrol" for j in jobs.values())


def test_jobcomp_keeps_each_jobs_last_line_and_counts_its_requeues():
    jobs = parse_jobcomp(fixture("jobcomp.txt"))
    assert jobs["1_0"].state == "TIMEOUT"
    assert jobs["1_1"].state == "CANCELLED" and jobs["1_1"].restarts == 0
    # 1_2 was requeued (a PENDING line), then cancelled.
    assert jobs["1_2"].state == "CANCELLED" and jobs["1_2"].restarts == 1
    assert jobs["12_0"].state == "CANCELLED" and jobs["12_0"].restarts == 1
    assert jobs["12"].state == "CANCELLED"  # the tasks cancelled before they started
    assert jobs["9_1"].state == "CANCELLED" and jobs["9_0"].state == "COMPLETED"
    handmade = parse_jobcomp(fixture("jobcomp_handmade.txt"))
    assert handmade["30_0"].state == "OUT_OF_MEMORY" and handmade["30_1"].state == "NODE_FAIL"


def test_sacct_lines_take_the_last_instance_and_skip_pending_ranges():
    jobs = parse_sacct(fixture("sacct.txt"))
    assert jobs["40_1"].state == "RUNNING" and jobs["40_1"].restarts == 1
    assert jobs["40_2"].state == "CANCELLED"  # "CANCELLED by 0"
    assert set(jobs) == {"40_0", "40_1", "40_2"}


def test_task_id_ranges_and_cluster_config():
    assert expand_task_ids("5") == [5]
    assert expand_task_ids("0-3%2") == [0, 1, 2, 3]
    assert expand_task_ids("1,3,5-6") == [1, 3, 5, 6]
    config = parse_config(
        "Configuration data as of x\nMaxArraySize            = 100\nKillWait = 3 sec\n"
    )
    assert max_array_size(config) == 100 and config["KillWait"] == "3 sec"
    assert max_array_size({}) == 1001  # Slurm's default where nothing answers


def test_query_merges_sources_freshest_last(monkeypatch):
    config = {"JobCompType": "jobcomp/filetxt", "JobCompLoc": str(FIXTURES / "jobcomp.txt")}
    calls = []

    def fake_run(*args, timeout=30):
        calls.append(args[0])
        return fixture("scontrol_show_job.txt") if args[0] == "scontrol" else None  # no sacct

    monkeypatch.setattr(slurm, "run_slurm", fake_run)
    jobs = query_jobs(["12_0", "12_3", "1_2", "9_0", "99_0"], config=config)
    assert calls == ["sacct", "scontrol"]
    assert jobs["12_3"].state == "PENDING" and jobs["12_3"].source == "scontrol"
    assert jobs["12_0"].restarts == 1
    assert jobs["1_2"].state == "CANCELLED" and jobs["1_2"].source == "jobcomp"
    assert "99_0" not in jobs

    # Once the controller has forgotten them, jobcomp's array line stands for unseen tasks.
    monkeypatch.setattr(slurm, "run_slurm", lambda *a, timeout=30: None)
    jobs = query_jobs(["12_3", "12_4"], config=config)
    assert jobs["12_4"].state == "CANCELLED" and jobs["12_4"].job_id == "12_4"


# -- the state rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "slurm_job_", "log", "state", "said"),
    [
        ({"status": "completed"}, job("CANCELLED"), None, "completed", ""),
        ({"status": "diverged", "error": "loss nan"}, None, None, "diverged", "loss nan"),
        (None, job("RUNNING"), None, "running", "Slurm: RUNNING"),
        (None, job("PENDING", reason="Resources"), None, "pending", "(Resources)"),
        ({"status": "preempted"}, job("PENDING", 1), None, "pending", "last stop: preempted"),
        (None, job("TIMEOUT"), None, "timed_out", "Slurm: TIMEOUT"),
        (None, job("OUT_OF_MEMORY"), None, "out_of_memory", "OUT_OF_MEMORY"),
        (None, job("NODE_FAIL"), None, "node_failure", "NODE_FAIL"),
        (None, job("PREEMPTED"), None, "preempted", "PREEMPTED"),
        # A job that ended without a result is never "completed".
        (None, job("COMPLETED"), None, "failed", "without writing result.json"),
        (None, job("FAILED"), OOM_LOG, "out_of_memory", "oom-kill"),
        (None, None, f"x\n{TIME_LIMIT_LOG}\n", "timed_out", "DUE TO TIME LIMIT"),
        (None, None, CANCEL_LOG, "cancelled", "CANCELLED AT"),
        ({"status": "stopped", "error": "SIGTERM"}, job("CANCELLED"), None, "cancelled", "SIGTERM"),
        ({"status": "stopped"}, None, CANCEL_LOG, "cancelled", "from the job's log"),
        ({"status": "failed", "error": "boom"}, job("COMPLETED"), None, "failed", "boom"),
        ({"status": "timed_out", "error": "x"}, job("COMPLETED"), None, "timed_out", "x"),
        (None, None, "nothing useful", "unknown", "say nothing"),
    ],
)
def test_infer_state(result, slurm_job_, log, state, said):
    recorded = RunResult.from_dict(result) if result is not None else None
    got, detail = infer_state(recorded, slurm_job_, log)
    assert got == state
    assert said in detail


def test_log_reason_takes_the_latest_notice():
    text = f"{TIME_LIMIT_LOG}\nStarting with JobEnvironment\n{CANCEL_LOG}\n"
    assert log_reason(text)[0] == RunStatus.CANCELLED
    assert log_reason("Job not requeued because: timed-out too many times.")[0] == "timed_out"
    assert log_reason("all fine") is None


def test_sweep_exit_status_rule():
    assert sweep_exit_status(["completed", "diverged"]) == 0
    assert sweep_exit_status([]) == 0
    assert sweep_exit_status(["completed", "failed"]) == 1
    assert sweep_exit_status(["completed", "timed_out"]) == 1
    assert sweep_exit_status(["completed", LiveState.RUNNING]) == 1


# -- a sweep directory ---------------------------------------------------------------------


def _result(run: Path, status: str, seed: int, **extra) -> None:
    write_json_atomic(
        run / "result.json",
        {
            "status": status,
            "overrides": [f"seed={seed}", "x=1"],
            "variant": ["x=1"],
            "seed": seed,
            "step": 6,
            "final_val_loss": 5.0 + seed / 10 if status == "completed" else None,
            "error": None,
            "run_dir": str(run),
            **extra,
        },
    )


def _metrics(run: Path, rows: list[dict]) -> None:
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def half_done_sweep(tmp_path: Path) -> Path:
    """Five submitted runs: completed, completed, running, killed at its time limit
    without a word (Slurm's notice in its log), not started yet."""
    sweep = tmp_path / "sweep"
    names = [f"seed={i},x=1" for i in range(5)]
    jobs = []
    for i, name in enumerate(names):
        log = sweep / ".submitit" / f"7_{i}" / f"7_{i}_0_log"
        jobs.append(SubmittedJob(name, f"7_{i}", [f"seed={i}", "x=1"], f"{log}.out", f"{log}.err"))
    record_submission(sweep, jobs, {"jobs": 5})
    for i in (0, 1, 2, 3):
        (sweep / names[i] / ".hydra").mkdir(parents=True)
        (sweep / names[i] / "config.yaml").write_text("seed: 0\n")
    _result(sweep / names[0], "completed", 0)
    _result(sweep / names[1], "completed", 1)
    _metrics(sweep / names[2], [{"step": 10, "loss": 4.5}, {"step": 10, "val_loss": 4.7}])
    _metrics(sweep / names[3], [{"step": 20, "loss": 4.0}])
    err = Path(jobs[3].stderr)
    err.parent.mkdir(parents=True)
    err.write_text(f"Starting with JobEnvironment\n{TIME_LIMIT_LOG}\n")
    return sweep


def fake_slurm(_ids: list[str]) -> dict[str, SlurmJob]:
    """The controller: 7_2 runs (requeued once), 7_4 pends; the others it forgot."""
    return {
        "7_2": SlurmJob("7_2", "RUNNING", restarts=1, source="test"),
        "7_4": SlurmJob("7_4", "PENDING", reason="Priority", source="test"),
    }


def test_status_of_a_half_done_sweep(half_done_sweep):
    views = {v.name: v for v in sweep_runs(half_done_sweep, query=fake_slurm)}
    states = {n: v.state for n, v in views.items()}
    assert states == {
        "seed=0,x=1": "completed",
        "seed=1,x=1": "completed",
        "seed=2,x=1": "running",
        "seed=3,x=1": "timed_out",
        "seed=4,x=1": "pending",
    }
    running = views["seed=2,x=1"]
    assert (running.progress.step, running.progress.loss, running.requeues) == (10, 4.5, 1)
    assert views["seed=3,x=1"].log.endswith("7_3_0_log.err")
    text = render_status(list(views.values()))
    lines = text.splitlines()
    assert len(lines) == 7  # header, five runs, totals
    assert "requeued 1x" in next(ln for ln in lines if ln.startswith("seed=2"))
    timed_out = next(ln for ln in lines if ln.startswith("seed=3"))
    assert "DUE TO TIME LIMIT" in timed_out and "7_3_0_log.err" in timed_out
    assert lines[-1] == "2 completed, 1 pending, 1 running, 1 timed_out of 5"


def test_collect_reports_what_finished_and_names_the_rest(half_done_sweep):
    done = collect(half_done_sweep, query=fake_slurm)
    assert done.exit_status == 1
    assert [v.name for v in done.outstanding] == ["seed=2,x=1", "seed=3,x=1", "seed=4,x=1"]
    report = done.report.read_text()
    assert "- timed_out: " in report and "DUE TO TIME LIMIT" in report
    assert "7_3_0_log.err" in report  # the killed job's log, named
    assert "- running: " in report
    # Once every run is in: exit status 0, nothing outstanding.
    for i in (2, 3, 4):
        (half_done_sweep / f"seed={i},x=1").mkdir(exist_ok=True)
        _result(half_done_sweep / f"seed={i},x=1", "completed", i)
    done = collect(half_done_sweep, query=lambda ids: {})
    assert done.exit_status == 0 and not done.outstanding
    assert "- timed_out" not in done.report.read_text()


def test_collect_before_any_run_started(tmp_path):
    record_submission(tmp_path, [SubmittedJob("seed=0", "8_0")], {"jobs": 1})
    done = collect(tmp_path, query=lambda ids: {"8_0": SlurmJob("8_0", "PENDING")})
    assert done.report is None and done.exit_status == 1
    assert [v.state for v in done.runs] == ["pending"]


def test_status_and_collect_commands(half_done_sweep, capsys, monkeypatch):
    monkeypatch.setattr("glmlab.cluster.status.query_jobs", fake_slurm)
    assert cli_main(["status", str(half_done_sweep)]) == 0
    assert "timed_out" in capsys.readouterr().out
    assert cli_main(["collect", str(half_done_sweep)]) == 1
    out = capsys.readouterr().out
    assert "report.md" in out and "not finished (3 of 5)" in out
    assert cli_main(["status", str(half_done_sweep / "nope")]) == 2


def test_last_progress_reads_the_last_training_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert last_progress(path).step is None
    path.write_text('{"step": 2, "loss": 3.0}\n{"step": 4, "loss": 2.5}\n{"step": 4, "val_')
    assert (last_progress(path).step, last_progress(path).loss) == (4, 2.5)


def test_resubmission_keeps_earlier_job_ids(tmp_path):
    record_submission(tmp_path, [SubmittedJob("a", "5_0"), SubmittedJob("b", "5_1")], {})
    record_submission(tmp_path, [SubmittedJob("b", "9_0")], {})
    runs = read_submission(tmp_path)
    assert runs["a"].job_id == "5_0"
    assert (runs["b"].job_id, runs["b"].earlier_job_ids) == ("9_0", ["5_1"])


def test_submit_refuses_another_launcher_and_a_missing_cluster(capsys, monkeypatch):
    assert cli_main(["submit", "seed=0,1", "hydra/launcher=submitit_slurm"]) == 2
    assert "hydra/launcher=submitit_slurm_async" in capsys.readouterr().err
    monkeypatch.setattr(slurm, "run_slurm", lambda *a, **k: None)  # no controller answers
    assert cli_main(["submit", "seed=0,1"]) == 2
    assert "no Slurm controller answers" in capsys.readouterr().err


# -- submission ----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size"), [(500, 100), (7, 3), (1, 1001), (1001, 1001)])
def test_arrays_are_cut_below_max_array_size(n, size):
    pieces = chunks(n, size)
    assert [i for p in pieces for i in p] == list(range(n))
    assert all(len(p) <= size for p in pieces)


@pytest.mark.parametrize(
    ("parallelism", "sizes"), [(256, [100] * 5), (8, [100] * 5), (3, [100] * 5), (10, [7, 3])]
)
def test_array_parallelism_is_shared_among_arrays(parallelism, sizes):
    shares = share_parallelism(parallelism, sizes)
    assert all(1 <= s <= n for s, n in zip(shares, sizes, strict=True))
    assert sum(shares) == max(min(parallelism, sum(sizes)), len(sizes))


def test_run_dir_names_are_hydras():
    register_resolvers()
    overrides = [["seed=1", "positional=rope", "name=x"], ["train.max_steps=6", "seed=0"]]
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        base = compose("config", overrides=["hydra.sweep.dir=/tmp/s"], return_hydra_config=True)
        expected = [
            run_dir_name(compose("config", ov, return_hydra_config=True).hydra.job.override_dirname)
            for ov in overrides
        ]
        assert run_dir_names(base, overrides) == expected
    assert expected[0] == "positional=rope,seed=1"  # name= is not part of a run's identity
    # Hydra's own default subdir is the job's number, counted across batches.
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        numbered = compose("config", ["hydra.sweep.subdir=${hydra.job.num}"], True)
    assert run_dir_names(numbered, overrides, first_num=4) == ["4", "5"]


# -- what a job records --------------------------------------------------------------------


class UncompletedJobError(RuntimeError):  # submitit's, by name
    pass


def test_failure_status_tells_a_time_out_from_a_crash():
    timed = UncompletedJobError("Job not requeued because: timed-out too many times.")
    assert failure_status(timed) == RunStatus.TIMED_OUT
    assert failure_status(ValueError("boom")) == RunStatus.FAILED


def test_interruption_names_the_cause(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert interruption(signal.SIGUSR2)["status"] == "timed_out"
    answers = {
        "CANCELLED": "cancelled",
        "TIMEOUT": "timed_out",
        "PENDING": "preempted",
        "COMPLETING": "stopped",  # scancel, seen from inside the job: cause unknown yet
    }
    for state, status in answers.items():
        monkeypatch.setattr(exit_reason, "run_slurm", lambda *a, s=state, **k: f"JobState={s}")
        got = interruption(signal.SIGTERM)
        assert got["status"] == status and state in got["error"]


def test_slurm_job_reads_the_environment(monkeypatch):
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    assert slurm_job() is None
    monkeypatch.setenv("SLURM_JOB_ID", "15")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert slurm_job() == {"job_id": "12_3", "restarts": 2}


def test_one_config_of_each_kind_is_composed_and_every_jobs_values_are_checked():
    """A 500-run sweep composes once per kind of job (the same keys, the same group
    options); the other jobs' values are set on their kind's config, so a value of the
    wrong type in any job stops the sweep before it is submitted, as composing each would."""
    groups = {"positional", "hydra/launcher"}.__contains__
    composed: list[list[str]] = []

    def compose_job(overrides):
        composed.append(list(overrides))
        return compose("config", list(overrides))

    batch = [
        [f"seed={s}", f"positional={p}", f"train.lr={lr}"]
        for p in ("rope", "learned_2d")
        for s in range(50)
        for lr in (0.001, 0.01)
    ]
    extra = [["seed=1", "+extra=1"], ["seed=2", "+extra=2"]]
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        check_batch([*batch, *extra], groups, compose_job)
        assert composed == [batch[0], batch[100], extra[0]]
        bad = [*batch[:3], ["seed=7", "positional=rope", "train.lr=fast"]]
        with pytest.raises(ConfigCompositionException, match="train.lr=fast"):
            check_batch(bad, groups, compose_job)


def test_glmlab_submit_stops_a_sweep_with_a_mistyped_value_before_submitting(tmp_path):
    """Through Hydra, as ``glmlab submit`` runs it (the ``glmlab_basic`` sweeper, the
    Slurm launcher): a job's value of the wrong type stops the sweep before submission."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/sweeper=glmlab_basic", "hydra/launcher=submitit_slurm_async"]
    args += ["seed=0,1,2", "train.lr=0.001,fast", *TINY, f"hydra.sweep.dir={sweep}"]
    proc = run_glmlab(args, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "glmlab: config error: train.lr=fast" in proc.stderr, proc.stderr[-2000:]
    assert not (sweep / SUBMISSION).exists()


def test_watch_refreshes_until_no_run_is_live(half_done_sweep, capsys):
    answers = [fake_slurm([]), {}]  # then the controller has forgotten every job
    views = watch(half_done_sweep, interval=0, query=lambda ids: answers.pop(0))
    assert not answers  # asked twice: stopped once nothing was pending or running
    assert capsys.readouterr().out.count("RUN  ") == 2
    assert {v.state for v in views} == {"completed", "timed_out", "unknown"}


def test_run_dir_names_of_a_multirun_are_named_by_each_jobs_swept_keys(tmp_path):
    """As the jobs name themselves: the swept keys of each job's own overrides (not the
    command line's ``6,7``), under a sweep directory that interpolates ``name``."""
    from hydra.types import RunMode

    register_resolvers()
    sweep = ["train.max_steps=6,7", "model.dim=32", "name=x"]
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        fixed = ["model.dim=32", "name=x", f"hydra.sweep.dir={tmp_path}/${{name}}"]
        base = compose("config", fixed, return_hydra_config=True)
    with open_dict(base):
        base.hydra.mode = RunMode.MULTIRUN
        base.hydra.overrides.task = sweep
    (tmp_path / "x").mkdir()
    OmegaConf.save(base, tmp_path / "x" / "multirun.yaml")
    jobs = [["train.max_steps=6", "model.dim=32", "name=x"], ["train.max_steps=7", "model.dim=32"]]
    assert run_dir_names(base, jobs) == ["train.max_steps=6", "train.max_steps=7"]
