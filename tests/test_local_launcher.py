"""The default launcher of a local sweep (glmlab/cluster/local.py): as many runs at once as
the cores allow on a CPU, one on a GPU, the same results as one at a time, and a closing
summary that says how many ran at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from glmlab.cli.callback import SweepReportCallback
from glmlab.cluster import local
from glmlab.cluster.launcher import LAUNCHER as SLURM_LAUNCHER
from glmlab.cluster.launcher import TARGET as SLURM_TARGET
from glmlab.cluster.launcher import install
from glmlab.runs.naming import register_resolvers
from tests.conftest import TINY, run_glmlab


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
def test_parallel_sweep_counts_failures_its_workers_could_not_record(tmp_path):
    """A run refused for a config change writes nothing to its directory (the finished run
    there is kept): its worker process returns the failure, and the sweep's last line
    counts it as the sequential sweep does (beside the finished runs it found on disk)."""
    common = [*TINY, "seed=0,1", "hydra.sweep.dir=sw", "hydra.sweep.subdir=s${seed}", "-m"]
    first = run_glmlab([*common, "hydra.launcher.n_jobs=2"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = [*common, "train.lr=0.001", "run.on_change=refuse"]
    for n_jobs in (2, 1):
        proc = run_glmlab([*again, f"hydra.launcher.n_jobs={n_jobs}"], cwd=tmp_path)
        out = proc.stdout.splitlines()
        assert proc.returncode == 1
        assert out[-1] == "glmlab: sweep sw: 4 runs: 2 completed, 0 diverged, 2 failed", out
        assert sum("failed (not recorded there)" in ln for ln in out) == 2
    for seed in (0, 1):  # the finished runs are untouched
        assert (
            json.loads((tmp_path / "sw" / f"s{seed}" / "result.json").read_text())["status"]
            == "completed"
        )
