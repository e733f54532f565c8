"""The default launcher of a local sweep (glmlab/cluster/local.py): as many runs at once as
the cores allow on a CPU, one on a GPU, the same results as one at a time, and a closing
summary that says how many ran at once."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from glmlab.cli import app
from glmlab.cli.callback import SweepReportCallback, end_interrupted
from glmlab.cluster import local
from glmlab.cluster.jobs import SweepInterrupted
from glmlab.cluster.launcher import LAUNCHER as SLURM_LAUNCHER
from glmlab.cluster.launcher import TARGET as SLURM_TARGET
from glmlab.cluster.launcher import install
from glmlab.cluster.worker import quiet_console
from glmlab.runs.naming import register_resolvers
from glmlab.runs.result import RunResult
from glmlab.runs.run_log import ON_CONSOLE
from tests.conftest import TINY, run_glmlab
from tests.test_report import BASE, write_run


def _hydra_config(*overrides: str):
    register_resolvers()
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_local_sweeps_use_the_parallel_launcher_by_default():
    cfg = _hydra_config("+experiment=span_shuffle_ablation")
    assert cfg.hydra.launcher._target_ == local.TARGET
    assert cfg.hydra.launcher.n_jobs is None  # chosen from the cores at launch
    assert cfg.train.threads == 1  # one torch thread per run at the CPU scale


@pytest.mark.parametrize("cores", [1, 2, 3, 16])
def test_runs_at_once_follow_the_cores_on_a_cpu(cores):
    cfg = _hydra_config("+experiment=span_shuffle_ablation", "train.device=cpu")
    assert local.concurrency(cfg, n_runs=6, cores=cores) == min(cores, 6)
    # Two torch threads a run: half as many runs at once, and never none.
    cfg.train.threads = 2
    assert local.concurrency(cfg, n_runs=6, cores=cores) == max(1, min(cores // 2, 6))


def test_runs_at_once_read_this_process_affinity(monkeypatch):
    """The cores this process may use (a Slurm allocation, taskset), not the machine's."""
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: {0, 5, 7}, raising=False)
    assert local.available_cores() == 3
    cfg = _hydra_config("train.device=cpu")
    assert local.concurrency(cfg, n_runs=12) == 3


@pytest.mark.parametrize("experiment", ["span_shuffle_ablation", "objective_ablation"])
def test_gpu_scale_runs_one_at_a_time(experiment):
    """One GPU is not shared by default, however many cores the machine has."""
    cfg = _hydra_config(f"+experiment={experiment}", "scale=gpu")
    assert cfg.hydra.launcher._target_ == local.TARGET
    assert local.concurrency(cfg, n_runs=18, cores=64) == 1


def test_torch_default_threads_runs_one_at_a_time():
    """train.threads unset: torch takes every core itself, so runs go one at a time."""
    cfg = _hydra_config("train.device=cpu", "train.threads=null")
    assert local.concurrency(cfg, n_runs=6, cores=8) == 1


def test_torchrun_ranks_run_one_at_a_time(monkeypatch):
    """Under torchrun every rank runs the sweep: its ranks must meet in the same run."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = _hydra_config("train.device=cpu")
    assert local.concurrency(cfg, n_runs=6, cores=8) == 1


def test_n_jobs_chooses_and_is_checked():
    cfg = _hydra_config("train.device=cpu", "hydra.launcher.n_jobs=3")
    assert local.concurrency(cfg, n_runs=6, cores=1) == 3
    assert local.concurrency(cfg, n_runs=2, cores=1) == 2  # never more than the runs
    bad = _hydra_config("hydra.launcher.n_jobs=0")
    with pytest.raises(ValueError, match=r"hydra.launcher.n_jobs=0: must be an integer >= 1"):
        local.concurrency(bad, n_runs=6)


def test_glmlab_submit_still_picks_the_slurm_launcher():
    """`glmlab submit` puts hydra/launcher=submitit_slurm_async first on the command line:
    it replaces the local default."""
    install()  # as glmlab.cli.app does: the Slurm launcher's config
    cfg = _hydra_config(f"hydra/launcher={SLURM_LAUNCHER}", "+experiment=norm_ablation")
    assert cfg.hydra.launcher._target_ == SLURM_TARGET


def test_launch_phrase():
    assert local.Launch(runs=6, at_once=2, wall_s=312.4).phrase() == "6 runs, 2 at once, in 312 s"
    assert local.Launch(runs=1, at_once=1, wall_s=3).phrase() == "1 run, one at a time, in 3 s"


def test_closing_summary_says_how_many_ran_at_once(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed, loss in enumerate((5.0, 5.1)):
        run = sweep / f"seed={seed}"
        run.mkdir(parents=True)
        (run / "result.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "seed": seed,
                    "step": 20,
                    "variant": [],
                    "final_val_loss": loss,
                    "eval": {},
                }
            )
        )
    local._record(str(sweep), runs=2, at_once=2, start=0.0)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "report": {}})
    SweepReportCallback().on_multirun_end(config)
    out = capsys.readouterr().out.splitlines()
    (line,) = [ln for ln in out if ln.startswith("  ran ")]
    assert line.startswith("  ran 2 runs, 2 at once, in ")
    assert out.index(line) == len(out) - 3  # before the report's path and the counts


def test_last_line_counts_each_run_directory_once(tmp_path, monkeypatch, capsys):
    """A run this sweep could not record in its directory counts as failed in place of
    the other run that directory holds; an interrupted sweep's unstarted runs count too."""
    for seed in (0, 1):
        write_run(tmp_path, f"s{seed}", BASE, seed, val=5.0)
    refused = RunResult("failed", run_dir=str(tmp_path / "s1"), error="ConfigChanged: ...")
    monkeypatch.setattr(app, "_unrecorded", [refused])
    monkeypatch.setattr(local, "_unrecorded", [])
    assert app.finish_sweep(tmp_path, planned=[tmp_path / "s1", tmp_path / "s2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        out[-1]
        == f"glmlab: sweep {tmp_path}: 3 runs: 1 completed, 0 diverged, 1 failed, 1 not started"
    )
    assert out[0].endswith("failed (not recorded there): ConfigChanged: ...")


def test_rerun_action_names_what_a_rerun_does(tmp_path):
    write_run(tmp_path, "done", BASE, 0, val=5.0)
    write_run(tmp_path, "stopped", BASE, 1, status="stopped", step=30)
    torch.save({"step": 30, "model": {}}, tmp_path / "stopped" / "checkpoint.pt")
    (tmp_path / "fresh").mkdir()
    assert app.rerun_action(tmp_path / "done") == "nothing (completed)"
    assert app.rerun_action(tmp_path / "stopped") == "resume from step 30"
    assert app.rerun_action(tmp_path / "fresh") == "start"
    assert app.rerun_action(tmp_path / "absent") == "start"


def test_a_sweep_that_could_not_record_its_runs_keeps_its_report(tmp_path, monkeypatch, capsys):
    """Refused runs: report.md, results.csv and multirun.yaml stay as the last sweep that
    ran wrote them (the sweeper's rewrite of multirun.yaml is undone)."""
    for seed in (0, 1):
        write_run(tmp_path, f"s{seed}", BASE, seed, val=5.0)
    files = {"multirun.yaml": b"old: sweep\n", "report.md": b"# old\n", "results.csv": b"a\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}, "report": {}})
    callback = SweepReportCallback()
    callback.on_multirun_start(config)
    (tmp_path / "multirun.yaml").write_text("new: sweep\n")  # as the sweeper does
    refused = RunResult("failed", run_dir=str(tmp_path / "s0"), error="ConfigChanged: x")
    monkeypatch.setattr(app, "_unrecorded", [refused])
    monkeypatch.setattr(local, "_unrecorded", [])
    callback.on_multirun_end(config)
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
    out = capsys.readouterr().out
    assert "are left as they were" in out and "verdicts" not in out
    assert out.splitlines()[-1].endswith("2 runs: 1 completed, 0 diverged, 1 failed")


def test_interrupted_exit_status_and_plain_ctrl_c(capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": "x"}}})
    assert SweepInterrupted(signal.SIGINT, config).exit_status == 130
    assert SweepInterrupted(signal.SIGTERM, config).exit_status == 143
    assert str(SweepInterrupted(signal.SIGTERM, config)) == "interrupted by SIGTERM"
    assert end_interrupted(KeyboardInterrupt()) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err


def test_side_by_side_console_keeps_warnings_and_marks_the_run():
    """A worker's console handlers show warnings, errors and a skipped run, with its run
    number; file handlers (the run's app.log) keep every line."""
    root = logging.getLogger()
    console = logging.StreamHandler(io.StringIO())
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    file_like = logging.FileHandler(os.devnull)
    root.addHandler(console)
    root.addHandler(file_like)
    # quiet_console changes every console handler of the root logger, pytest's own capture
    # handlers included: they are put back as they were, or later tests' caplog sees only
    # warnings.
    saved = [(h, list(h.filters), h.formatter) for h in root.handlers]
    try:
        quiet_console(3)
        record = logging.LogRecord("glmlab", logging.WARNING, "", 0, "disk slow", None, None)
        info = logging.LogRecord("glmlab", logging.INFO, "", 0, "model: 33 params", None, None)
        skipped = logging.makeLogRecord({**vars(info), "msg": "skipped", **ON_CONSOLE})
        assert console.filter(record) and not console.filter(info) and console.filter(skipped)
        assert file_like.filter(info)
        assert console.format(record) == "[run 3] WARNING disk slow"
    finally:
        for handler, filters, formatter in saved:
            handler.filters[:] = filters
            handler.setFormatter(formatter)
        root.removeHandler(console)
        root.removeHandler(file_like)
        file_like.close()


@pytest.mark.slow
def test_parallel_sweep_equals_the_sequential_one(tmp_path, monkeypatch):
    """One experiment's sweep, two runs at once and one at a time: the same runs, the same
    metrics, to the last bit. The parallel one starts on an empty data cache, so its two
    first runs prepare the corpus and tokenizer at the same moment (the cache publishes
    atomically: both must come out whole and equal)."""
    args = ["+experiment=span_shuffle_ablation", *TINY, "train.max_steps=12", "-m"]
    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path / "fresh-cache"))
    (tmp_path / "p").mkdir()
    (tmp_path / "s").mkdir()
    parallel = run_glmlab([*args, "hydra.launcher.n_jobs=2"], cwd=tmp_path / "p")
    sequential = run_glmlab([*args, "hydra.launcher.n_jobs=1"], cwd=tmp_path / "s")
    assert parallel.returncode == 0, parallel.stderr
    assert sequential.returncode == 0, sequential.stderr
    # 2 variants x 3 seeds and the A/A control arm (the baseline under train.stream=1).
    assert "9 runs, 2 at once, in " in parallel.stdout
    assert "9 runs, one at a time, in " in sequential.stdout
    # Every run printed its closing line, from whichever process ran it.
    assert parallel.stdout.count("glmlab: [run ") == 9

    def results(root: Path) -> dict[str, dict]:
        sweep = root / "sweeps" / "span_shuffle_ablation"
        return {
            p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/result.json"))
        }

    par, seq = results(tmp_path / "p"), results(tmp_path / "s")
    assert len(par) == 9 and par.keys() == seq.keys()
    for name in par:
        a, b = par[name], seq[name]
        assert a["status"] == b["status"] == "completed"
        assert (a["seed"], a["variant"], a["step"]) == (b["seed"], b["variant"], b["step"])
        assert a["final_val_loss"] == b["final_val_loss"]
        scores = {k: v for k, v in a["eval"].items() if k.endswith(("_loss", "_acc", "_ppl"))}
        assert scores and scores == {k: b["eval"][k] for k in scores}
    for name in ("report.md",):  # both reports built, with the same verdict table
        p_md = (tmp_path / "p" / "sweeps" / "span_shuffle_ablation" / name).read_text()
        s_md = (tmp_path / "s" / "sweeps" / "span_shuffle_ablation" / name).read_text()
        verdicts = [md.split("## Verdicts")[1].split("##")[0] for md in (p_md, s_md)]
        assert verdicts[0] == verdicts[1]


@pytest.mark.slow
def test_refused_sweep_keeps_its_report_and_counts_its_own_runs(tmp_path):
    """A run refused for a config change writes nothing to its directory (the finished run
    there is kept): its worker process returns the failure, the sweep's last line counts
    each of its runs once (2, not the 2 on disk plus the 2 refusals), and multirun.yaml,
    report.md and results.csv stay as the sweep that ran wrote them (side by side and one
    at a time alike)."""
    common = [*TINY, "seed=0,1", "hydra.sweep.dir=sw", "hydra.sweep.subdir=s${seed}", "-m"]
    first = run_glmlab([*common, "hydra.launcher.n_jobs=2"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kept = ("multirun.yaml", "report.md", "results.csv")
    before = {name: (tmp_path / "sw" / name).read_bytes() for name in kept}
    again = [*common, "train.lr=0.001", "run.on_change=refuse"]
    for n_jobs in (2, 1):
        proc = run_glmlab([*again, f"hydra.launcher.n_jobs={n_jobs}"], cwd=tmp_path)
        out = proc.stdout.splitlines()
        assert proc.returncode == 1
        assert out[-1] == "glmlab: sweep sw: 2 runs: 0 completed, 0 diverged, 2 failed", out
        assert sum("failed (not recorded there)" in ln for ln in out) == 2
        assert any("multirun.yaml are left as they were" in ln for ln in out), out
        assert not any("verdicts" in ln for ln in out), out
        assert {name: (tmp_path / "sw" / name).read_bytes() for name in kept} == before
    for seed in (0, 1):  # the finished runs are untouched
        assert (
            json.loads((tmp_path / "sw" / f"s{seed}" / "result.json").read_text())["status"]
            == "completed"
        )


@pytest.mark.slow
def test_side_by_side_console_shows_run_lines_and_keeps_logs_in_app_log(tmp_path):
    """Side by side, each run's log lines (data, backend, model size) go to its app.log;
    the terminal shows one line per run, the verdicts and the counts."""
    args = [*TINY, "seed=0,1", "name=quiet", "hydra.launcher.n_jobs=2", "-m"]
    proc = run_glmlab(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    terminal = (proc.stdout + proc.stderr).splitlines()
    assert not [ln for ln in terminal if "[INFO]" in ln], terminal
    assert len(terminal) <= 10, terminal  # start, 2 runs, verdicts (<= 5 lines), counts
    assert terminal[0] == (
        "glmlab: sweep sweeps/quiet: 2 runs, 2 at once, one process each "
        "(each run logs to its app.log)"
    )
    assert sum(ln.startswith("glmlab: [run ") for ln in terminal) == 2
    for seed in (0, 1):
        log = (tmp_path / "sweeps" / "quiet" / f"seed={seed}" / "app.log").read_text()
        for needle in (
            "prepared stdlib_docs",
            "attention backend: ",
            "model: ",
            "evaluation suite",
        ):
            assert needle in log, (seed, needle, log)


@pytest.mark.slow
def test_n_jobs_below_one_is_one_line_before_any_work(tmp_path):
    proc = run_glmlab([*TINY, "seed=0,1", "hydra.launcher.n_jobs=0", "-m"], cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "glmlab: config error: hydra.launcher.n_jobs=0: must be an integer >= 1 "
        "(or null: as many as the cores allow)"
    ), proc.stderr
    assert proc.stdout == "" and not (tmp_path / "sweeps").exists()
