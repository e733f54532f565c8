"""The ladder sweeper's two phases without training (glmlab/ladder/sweep.py): a fake
launcher that writes run directories with known validation losses, a blocking one and a
submit-and-return one (as ``glmlab submit``'s), and reruns that find finished runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

from glmlab.cluster.launcher import TARGET as ASYNC_TARGET
from glmlab.ladder.sweep import sweep_ladder
from glmlab.runs.layout import HYDRA_OVERRIDES
from glmlab.runs.result import RunResult, write_result

LADDER = {
    "rungs": [
        {"n_layers": 2, "dim": 32, "n_heads": 2},
        {"n_layers": 2, "dim": 48, "n_heads": 3},
        {"n_layers": 2, "dim": 64, "n_heads": 4},
    ],
    "tokens_per_param": 20,
    "lr_grid": [1e-3, 3e-3, 1e-2],
    "tuning_seed": 1000,
    "bootstrap": 0,
    "lr_choice": "best",  # the seeds at a grid point (the parabola's vertex: test_ladder.py)
}
BEST = {"32": 1e-2, "48": 3e-3, "64": 1e-3}  # the fake's best lr per width


def val_loss(values: dict[str, str]) -> float:
    """A known landscape: distance in log lr from the width's best lr, plus a variant
    offset; the evaluation suite's numbers are made to favour a different lr."""
    best = BEST[values["model.dim"]]
    offset = 0.1 if values["objective.shuffle_spans"].lower() == "false" else 0.0
    return 4.0 + offset + abs(math.log10(float(values["train.lr"])) - math.log10(best))


class FakeLauncher:
    def __init__(self, sweep_dir: Path, run: bool) -> None:
        self.sweep_dir, self.run, self.batches = sweep_dir, run, []

    def launch(self, batch, initial_job_idx):
        self.batches.append([list(j) for j in batch])
        if self.run:
            for job in batch:
                finish(self.sweep_dir, job)
        return []


def finish(sweep_dir: Path, job: list[str]) -> None:
    """Write the run directory a finished job leaves (its overrides and result.json)."""
    values = dict(o.split("=", 1) for o in job)
    run_dir = sweep_dir / ("run_" + str(abs(hash(tuple(sorted(job))))))
    (run_dir / HYDRA_OVERRIDES).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / HYDRA_OVERRIDES).write_text(yaml.safe_dump(list(job)))
    lr = float(values["train.lr"])
    write_result(
        run_dir,
        RunResult(
            status="completed",
            final_val_loss=val_loss(values),
            eval={"cloze_acc": 1.0 if lr == 1e-3 else 0.0},  # must not matter
            overrides=sorted(job),
            seed=int(values["seed"]),
        ),
    )


def sweeper(tmp_path: Path, *, run: bool, async_launcher: bool) -> SimpleNamespace:
    sweep_dir = tmp_path / "sweep"
    config = OmegaConf.create(
        {
            "train": {"batch_size": 16, "grad_accum": 1, "warmup_steps": 30},
            "data": {"seq_len": 128},
            "model": {"ffn": "gelu", "ffn_mult": 4},
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "job": {"config": {"override_dirname": {"exclude_keys": ["experiment"]}}},
                "launcher": {"_target_": ASYNC_TARGET if async_launcher else "basic"},
                "sweeper": {"params": {}},
            },
        }
    )
    return SimpleNamespace(
        config=config,
        params={"objective.shuffle_spans": "true,false", "seed": "0,1,2"},
        ladder=LADDER,
        hydra_context=SimpleNamespace(config_loader=None),
        split_arguments=BasicSweeper.split_arguments,
        validate_batch_is_legal=lambda batch: None,
        launcher=FakeLauncher(sweep_dir, run),
    )


def lr_of(job: list[str]) -> tuple[str, str, float]:
    values = dict(o.split("=", 1) for o in job)
    return values["objective.shuffle_spans"], values["model.dim"], float(values["train.lr"])


def test_blocking_launcher_runs_both_phases_and_seeds_use_the_best_lr(tmp_path):
    s = sweeper(tmp_path, run=True, async_launcher=False)
    sweep_ladder(s, ["+experiment=span_shuffle_ablation"])
    grid, seeds = s.launcher.batches
    assert len(grid) == 2 * 3 * 3 and all("seed=1000" in j for j in grid)
    assert len(seeds) == 2 * 3 * 3 and not any("seed=1000" in j for j in seeds)
    for job in seeds:
        _, dim, lr = lr_of(job)
        assert lr == BEST[dim]  # by validation loss, not by the suite (which favours 1e-3)
    plan = json.loads((tmp_path / "sweep" / "ladder.json").read_text())
    assert plan["phase"] == 2 and len(plan["plan"]["chosen"]) == 6
    # The run directories are named by the ladder's keys: multirun.yaml lists them as swept.
    saved = OmegaConf.load(tmp_path / "sweep" / "multirun.yaml")
    assert set(saved.hydra.sweeper.params) >= {"model.dim", "train.lr", "train.max_steps"}
    # A rerun finds every run finished and launches nothing.
    s.launcher.batches.clear()
    sweep_ladder(s, ["+experiment=span_shuffle_ablation"])
    assert s.launcher.batches == []


def test_submit_and_return_stops_after_phase_1_and_a_rerun_queues_phase_2(tmp_path, capsys):
    s = sweeper(tmp_path, run=False, async_launcher=True)
    sweep_ladder(s, [])
    assert len(s.launcher.batches) == 1 and len(s.launcher.batches[0]) == 18
    assert "rerun the same command" in capsys.readouterr().out
    assert json.loads((tmp_path / "sweep" / "ladder.json").read_text())["phase"] == 1
    # The grid finishes on the cluster; rerunning the command queues only the seeds.
    for job in s.launcher.batches[0]:
        finish(tmp_path / "sweep", job)
    s.launcher.batches.clear()
    sweep_ladder(s, [])
    assert len(s.launcher.batches) == 1
    seeds = s.launcher.batches[0]
    assert len(seeds) == 18 and all(lr_of(j)[2] == BEST[lr_of(j)[1]] for j in seeds)


def test_partly_finished_grid_queues_only_the_rest(tmp_path):
    s = sweeper(tmp_path, run=False, async_launcher=True)
    sweep_ladder(s, [])
    first = s.launcher.batches[0]
    for job in first[:10]:
        finish(tmp_path / "sweep", job)
    s.launcher.batches.clear()
    sweep_ladder(s, [])
    assert s.launcher.batches == [first[10:]]  # the other 8 again; no seeds yet


def test_a_rerun_waits_for_queued_jobs_instead_of_submitting_them_twice(
    tmp_path, monkeypatch, capsys
):
    """Rerun too early: of the 18 grid jobs, 10 finished, 5 Slurm still has (queued or
    running) and 3 ended without a result (failed): only those 3 are submitted again, the
    5 are waited for, and no seed is queued before the grid finished."""
    import glmlab.cluster.status as status
    from glmlab.cluster.slurm import SlurmJob
    from glmlab.cluster.submission import SubmittedJob, record_submission

    s = sweeper(tmp_path, run=False, async_launcher=True)
    sweep_ladder(s, [])
    first = s.launcher.batches[0]
    sweep_dir = tmp_path / "sweep"
    jobs = [SubmittedJob(f"run{i}", str(100 + i), list(job)) for i, job in enumerate(first)]
    record_submission(sweep_dir, jobs, {})
    for job in first[:10]:
        finish(sweep_dir, job)
    states = {str(100 + i): "RUNNING" if i < 12 else "PENDING" for i in range(10, 15)}
    states |= {str(100 + i): "FAILED" for i in range(15, 18)}
    asked: list[list[str]] = []

    def query(ids: list[str]) -> dict[str, SlurmJob]:
        asked.append(ids)
        return {i: SlurmJob(i, states[i]) for i in ids if i in states}

    monkeypatch.setattr(status, "query_jobs", query)
    capsys.readouterr()
    s.launcher.batches.clear()
    sweep_ladder(s, [])
    assert asked, "Slurm was not asked"
    assert s.launcher.batches == [first[15:]]
    said = capsys.readouterr().out
    assert "phase 1: 3 grid runs submitted, 5 submitted earlier still queued or running" in said
    assert json.loads((sweep_dir / "ladder.json").read_text())["phase"] == 1


def test_bad_ladder_stops_before_writing(tmp_path):
    s = sweeper(tmp_path, run=True, async_launcher=False)
    s.ladder = {**LADDER, "lr_grid": [1e-3, 1e-3]}
    with pytest.raises(SystemExit, match="at least 3 distinct learning rates"):
        sweep_ladder(s, [])
    assert not (tmp_path / "sweep").exists() and s.launcher.batches == []
