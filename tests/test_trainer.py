"""The trainer: resume equals an uninterrupted run, divergence and failure are recorded."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.cli.run import execute_run
from glmlab.config.spec import parse_config
from glmlab.train.checkpoint import load_checkpoint, save_checkpoint
from glmlab.train.schedule import lr_factor
from glmlab.train.trainer import Trainer
from tests.conftest import TINY


def config(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("tokens_per_s", None)
    return rows


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    steps = ["train.max_steps=10", "train.eval_interval=4", "train.checkpoint_interval=100"]
    straight = Trainer(parse_config(config(*steps)), tmp_path / "a").fit()
    assert straight.status == "completed"

    first = Trainer(parse_config(config(*steps, "train.stop_after=5")), tmp_path / "b").fit()
    assert first.status == "stopped" and first.step == 5
    trainer = Trainer(parse_config(config(*steps)), tmp_path / "b")
    resumed = trainer.fit()
    assert resumed.status == "completed" and resumed.step == 10
    # The in-memory record holds every window's throughput, those before the resume
    # included, and the last validation loss: what metrics.jsonl holds, never read back.
    rows = [
        json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    ]
    rates = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    assert len(rates) == 10 // 2 and trainer.record.tokens_per_s == rates  # log_interval 2
    assert trainer.record.val_loss == [r["val_loss"] for r in rows if "val_loss" in r][-1]

    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["scheduler"] == b["scheduler"]
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert straight.final_val_loss == resumed.final_val_loss


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    runs = [
        Trainer(parse_config(config(f"seed={s}", "train.max_steps=3")), tmp_path / str(i)).fit()
        for i, s in enumerate([0, 0, 1])
    ]
    assert runs[0].final_val_loss == runs[1].final_val_loss != runs[2].final_val_loss


def test_divergence_is_recorded_not_raised(tmp_path):
    result = execute_run(
        config("train.lr=1e30", "train.grad_clip=1e30", "train.warmup_steps=0"),
        tmp_path,
        ["train.lr=1e30"],
    )
    assert result.status == "diverged"
    assert result.step > 0 and "loss is" in result.error
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_failure_is_recorded_with_its_error(tmp_path):
    result = execute_run(config("norm_layout.name=no_such_layout"), tmp_path, [])
    assert result.status == "failed"
    assert "no norm_layout plugin named 'no_such_layout'" in result.error
    assert "Traceback" in (tmp_path / "error.log").read_text()


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"x": torch.arange(3), "step": 7})
    assert load_checkpoint(path)["step"] == 7
    assert not list(tmp_path.glob(".*tmp"))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"bad": Unpicklable()})
    assert load_checkpoint(path)["step"] == 7  # the old checkpoint survives a failed write
    assert not list(tmp_path.glob(".*tmp"))


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, warmup_steps=10, max_steps=110, min_lr_ratio=0.1) for s in range(111)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert (
        f[10] == pytest.approx(1.0)
        and f[60] == pytest.approx(0.55)
        and f[110] == pytest.approx(0.1)
    )
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))


def test_result_records_how_the_attention_backend_was_chosen(tmp_path):
    result = execute_run(config("train.max_steps=2", "attention=auto"), tmp_path, [])
    assert result.status == "completed"
    written = json.loads((tmp_path / "result.json").read_text())["attention_selection"]
    # The CPU: auto stays sdpa, untimed (CUDA times the candidates: test_attention_select.py).
    assert written == {
        "backend": "sdpa",
        "method": "default",
        "requested": "auto",
        "timings_ms": {},
        "skipped": {},
        "shape": {},
    }
