"""Run directories of a sweep are named by the swept keys only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmlab.runs.naming import existing_run, run_address, run_dir_name, swept_keys
from tests.conftest import TINY, run_glmlab


def test_swept_keys_from_command_line_and_sweeper_params() -> None:
    args = ["seed=0,1", "model.dim=32", "data.corpus_options.path=/x/y.jsonl", "lr=range(1,3)"]
    assert swept_keys(args) == {"seed", "lr"}
    params = {"positional": "rope,learned_2d", "seed": "0,1,2"}
    assert swept_keys(["model.dim=32"], params) == {"positional", "seed"}
    # The command line overrides a swept param with one value: no longer swept.
    assert swept_keys(["seed=0"], params) == {"positional"}
    assert swept_keys(["+experiment=posenc_ablation", "train.max_steps=5"]) == set()


def test_run_dir_name_is_stable_and_bounded() -> None:
    assert run_dir_name("positional=rope,seed=1") == "positional=rope,seed=1"
    assert run_dir_name("") == "defaults"
    long = ",".join(f"key{i}=value{i}" for i in range(30))
    name = run_dir_name(long)
    assert len(name) == 96 and name == run_dir_name(long) and name != run_dir_name(long + "x")


def test_existing_run_matches_overrides_whatever_the_spelling(tmp_path: Path) -> None:
    for name, overrides in [("a", ["seed=0", "x=1"]), ("b", ["seed=1", "x=True", "name=n"])]:
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in overrides)
        )
    excluded = {"name", "train.stop_after"}
    assert existing_run(tmp_path, run_address(["x=true", "seed=1"]), excluded) == "b"
    assert existing_run(tmp_path, run_address(["+x=1", "seed=0"]), excluded) == "a"
    assert existing_run(tmp_path, run_address(["x=2", "seed=0"]), excluded) is None


@pytest.mark.slow
def test_multirun_names_runs_by_swept_keys_and_a_rerun_finds_them(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fixed = [*TINY, "train.max_steps=2", "train.eval_suite=false", "data.min_tokens=8"]
    args = ["-m", "positional=rope,learned_2d", "seed=0", *fixed, f"hydra.sweep.dir={sweep}"]
    first = run_glmlab(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["positional=learned_2d,seed=0", "positional=rope,seed=0"]
    result = json.loads((sweep / "positional=rope,seed=0" / "result.json").read_text())
    assert result["status"] == "completed"
    # The full override list is kept: in result.json and at the top of config.yaml.
    assert "model.dim=32" in result["overrides"] and "data.min_tokens=8" in result["overrides"]
    header = (sweep / "positional=rope,seed=0" / "config.yaml").read_text().splitlines()[0]
    assert header.startswith("# overrides: ") and "model.dim=32" in header
    assert result["provenance"]["plugins"]["positional"]["name"] == "rope"
    assert result["provenance"]["ended_at"] >= result["provenance"]["started_at"]
    # The same sweep again: the same directories, both runs found finished and skipped.
    again = run_glmlab(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == runs
    assert (again.stdout + again.stderr).count("already completed: skipped") == 2
    assert json.loads((sweep / "positional=rope,seed=0" / "result.json").read_text()) == result
    # positional now fixed: the run is found by its overrides, not made again as seed=0/.
    narrowed = ["-m", "positional=rope", "seed=0", *fixed, f"hydra.sweep.dir={sweep}"]
    third = run_glmlab(narrowed, cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == runs
    assert "already completed: skipped" in third.stdout + third.stderr
