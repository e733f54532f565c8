"""Experiment trackers: the tracker kind, the built-in TensorBoard, MLflow and W&B
trackers read back through their own libraries, and a stopped-and-resumed run that
continues the same tracker run with one continuous series."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from glmlab.io import read_jsonl
from glmlab.plugin.base import TrackerRun, TrackerUnavailable
from glmlab.plugin.registry import UnknownPluginError, get_registry
from glmlab.plugins.trackers import installed
from glmlab.runs.result import RunResult, read_result
from glmlab.runs.trackers import Trackers, row_metrics, tracker_choices
from tests import tracker_readers as readers
from tests.conftest import TINY, run_glmlab

needs = {
    name: pytest.mark.skipif(
        not installed(name), reason=f"{name} is not installed (pip install 'glmlab[{name}]')"
    )
    for name in ("tensorboard", "mlflow", "wandb")
}


@pytest.fixture(autouse=True)
def wandb_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # no account, no network
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


# -- the kind ------------------------------------------------------------------------------


def test_builtin_trackers_register_through_the_entry_point() -> None:
    entries = {e.name: e for e in get_registry().entries("tracker")}
    assert {"tensorboard", "mlflow", "wandb"} <= set(entries)
    assert entries["mlflow"].distribution == "glmlab"


def test_row_metrics_names_train_val_and_eval_scalars() -> None:
    row = {"step": 4, "loss": 5.0, "lr": 1e-3, "tokens_per_s": 900.0}
    assert row_metrics(row) == {"train/loss": 5.0, "train/lr": 1e-3, "train/tokens_per_s": 900.0}
    assert row_metrics({"step": 4, "val_loss": 5.5}) == {"val/loss": 5.5}
    evals = {"step": 6, "eval": {"cloze_acc": 0.5, "note": "x", "bad": float("nan")}}
    assert row_metrics(evals) == {"eval/cloze_acc": 0.5}


def test_tracker_choices_from_group_or_list() -> None:
    cfg = OmegaConf.create({"tracker": {"tensorboard": {"log_dir": "tb"}, "mlflow": None}})
    assert tracker_choices(cfg) == {"tensorboard": {"log_dir": "tb"}, "mlflow": {}}
    assert tracker_choices(OmegaConf.create({"tracker": ["wandb"]})) == {"wandb": {}}
    assert tracker_choices(OmegaConf.create({"seed": 0})) == {}


def test_config_group_selects_a_list_of_trackers() -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module("glmlab.conf", version_base="1.3"):
        default = compose("config")
        chosen = compose("config", overrides=["tracker=[tensorboard,mlflow]"])
    assert tracker_choices(default) == {}
    assert set(tracker_choices(chosen)) == {"tensorboard", "mlflow"}
    assert chosen.tracker.tensorboard.log_dir == "tensorboard"


def test_unknown_tracker_lists_the_available_ones(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"tracker": {"neptune": {}}})
    with pytest.raises(UnknownPluginError, match="no tracker plugin named 'neptune'.*'mlflow'"):
        Trackers.from_config(cfg, tmp_path / "run", [])


@pytest.mark.parametrize(
    ("name", "module"), [("tensorboard", "tensorboard"), ("mlflow", "mlflow"), ("wandb", "wandb")]
)
def test_missing_library_is_a_clear_error_naming_the_extra(
    name: str, module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    if name == "tensorboard":
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    cfg = OmegaConf.create({"tracker": {name: {}}})
    with pytest.raises(TrackerUnavailable, match=rf"pip install 'glmlab\[{name}\]'"):
        Trackers.from_config(cfg, tmp_path / "run", [])


def test_missing_tracker_fails_the_run_before_any_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from glmlab.cli.inspect import compose_config
    from glmlab.cli.run import execute_run

    monkeypatch.setitem(sys.modules, "mlflow", None)
    cfg = compose_config([*TINY, "tracker=[mlflow]"])
    run_dir = tmp_path / "run"
    with caplog.at_level("INFO", logger="glmlab"):
        result = execute_run(cfg, run_dir, ["tracker=[mlflow]"])
    assert result.status == "failed" and "glmlab[mlflow]" in result.error
    assert not any("data " in r.getMessage() for r in caplog.records)  # no corpus prepared
    assert not (run_dir / "metrics.jsonl").exists()


class _Failing:
    def __init__(self) -> None:
        self.calls = 0

    def start(self, run: TrackerRun) -> str:
        return "x"

    def log(self, step: int, metrics: dict) -> None:
        self.calls += 1
        raise ConnectionError("server down")

    def finish(self, status: str, summary: dict) -> None:
        raise AssertionError("a tracker switched off is not finished")


def test_a_tracker_failing_mid_run_is_switched_off_not_fatal(tmp_path: Path) -> None:
    failing = _Failing()
    run = TrackerRun(tmp_path / "s" / "r", "s", "r", "", {})
    run.run_dir.mkdir(parents=True)
    trackers = Trackers({"failing": failing}, run)
    trackers.start(0)
    assert json.loads((run.run_dir / "trackers.json").read_text()) == {"failing": "x"}
    trackers.log_row({"step": 1, "loss": 2.0})
    trackers.log_row({"step": 2, "loss": 1.0})
    trackers.finish(RunResult(status="completed"))
    assert failing.calls == 1


# -- end to end: stop at a checkpoint, resume, one tracker run -----------------------------


def _train(tmp_path: Path, tracker: str, *extra: str) -> Path:
    sweep = tmp_path / "tracked"
    args = ["-m", *TINY, "seed=0", f"tracker=[{tracker}]", f"hydra.sweep.dir={sweep}", *extra]
    proc = run_glmlab([*args, "train.eval_suite_items=8", "train.cloze_items=8"], cwd=tmp_path)
    stopped = any(a.startswith("train.stop_after=") for a in extra)
    assert proc.returncode == (1 if stopped else 0), proc.stderr[-3000:]  # a stopped run: 1
    return sweep / "seed=0"


@pytest.mark.slow
@pytest.mark.parametrize("tracker", [pytest.param(n, marks=needs[n]) for n in needs])
def test_stopped_and_resumed_run_continues_the_same_tracker_run(
    tracker: str, tmp_path: Path
) -> None:
    run_dir = _train(tmp_path, tracker, "train.stop_after=3")
    assert read_result(run_dir).status == "stopped"
    first_id = json.loads((run_dir / "trackers.json").read_text())[tracker]
    _train(tmp_path, tracker)
    result = read_result(run_dir)
    assert result.status == "completed" and result.step == 6
    run_id = json.loads((run_dir / "trackers.json").read_text())[tracker]
    assert run_id == first_id
    rows = read_jsonl(run_dir / "metrics.jsonl")
    want_loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    want_val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    assert [s for s, _ in want_loss] == [2, 4, 6] and [s for s, _ in want_val] == [3, 6]

    if tracker == "tensorboard":
        series = readers.tensorboard_scalars(run_dir / run_id)
        assert readers.tensorboard_hparams(run_dir / run_id)  # config + final metrics
    elif tracker == "mlflow":
        run, series = readers.mlflow_run(f"sqlite:///{(run_dir.parent / 'mlflow.db')}", run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == "seed=0"
        assert run.data.params["model.dim"] == "32"
        assert series["final/final_val_loss"][0][1] == pytest.approx(result.final_val_loss)
    else:
        runs, series, summary = readers.wandb_offline(run_dir, run_id)
        assert len(runs) == 2 and {r.run_id for r in runs} == {run_id}
        assert runs[0].project == "tracked" and runs[0].run_group == "tracked"
        assert summary["final_val_loss"] == pytest.approx(result.final_val_loss)
    approx = [(s, pytest.approx(v, rel=1e-5)) for s, v in want_loss]
    assert series["train/loss"] == approx  # one continuous series over both attempts
    assert series["val/loss"] == [(s, pytest.approx(v, rel=1e-5)) for s, v in want_val]
    assert [s for s, _ in series["eval/cloze_acc"]] == [6]
