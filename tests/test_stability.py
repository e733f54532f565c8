"""Training stability as an outcome: loss spikes and gradient-norm excursions counted from
the logged windows (the same after a resume), recorded in result.json for completed and
diverged runs alike, and read by the report for diverged runs too (counted, not dropped)."""

from __future__ import annotations

import json
import math

import pytest
from hydra import compose, initialize_config_module

from glmlab.cli.run import execute_run
from glmlab.report.load import read_run
from glmlab.runs.stability import EXCURSION_FACTOR, SPIKE_NATS, StabilityRecord
from tests.conftest import TINY


def record_of(rows: list[dict]) -> StabilityRecord:
    record = StabilityRecord()
    for row in rows:
        record.add(row)
    return record


def test_loss_spikes_and_gradient_excursions_by_hand():
    losses = [6.0, 5.0, 4.0, 4.0 + SPIKE_NATS + 0.1, 4.8, 4.1, 3.9, 3.9 + SPIKE_NATS + 0.01, 3.8]
    # One spike over two windows (4.6, 4.8) counts once; a second one later counts again.
    assert record_of([{"loss": x} for x in losses]).loss_spikes == 2
    # A rise of less than SPIKE_NATS above the lowest loss so far is no spike.
    assert record_of([{"loss": x} for x in (5.0, 4.0, 4.0 + SPIKE_NATS - 0.01)]).loss_spikes == 0
    norms = [1.0, 0.8, 1.2, 0.9, 1.0, EXCURSION_FACTOR * 1.0 + 0.5, 9.0, 1.0, 20.0]
    record = record_of([{"grad_norm": g} for g in norms])
    # Judged against the median of the earlier windows once there are 5: two excursions.
    assert record.grad_norm_excursions == 2 and record.max_grad_norm == 20.0
    # The first windows set the median; a large norm among them is no excursion.
    assert record_of([{"grad_norm": g} for g in (50.0, 1.0, 1.0)]).grad_norm_excursions == 0
    summary = record_of([{"loss": math.nan, "grad_norm": math.inf}]).summary(diverged=True)
    assert summary == {
        "diverged": 1.0,
        "loss_spikes": 0.0,
        "grad_norm_excursions": 0.0,
        "max_grad_norm": 0.0,
    }


def run(tmp_path, *overrides: str) -> dict:
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, *overrides])
    return execute_run(cfg, tmp_path, [])


def test_a_run_records_its_gradient_norms_and_stability(tmp_path):
    result = run(tmp_path / "ok")
    rows = [json.loads(x) for x in (tmp_path / "ok" / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in rows if "loss" in r]
    assert windows and all(r["grad_norm"] > 0 for r in windows)
    saved = json.loads((tmp_path / "ok" / "result.json").read_text())
    assert saved["stability"] == record_of(windows).summary(diverged=False)
    assert saved["stability"]["max_grad_norm"] == pytest.approx(
        max(r["grad_norm"] for r in windows), abs=1e-4
    )
    # The supervision a step gives (from result.json's compute): GLM's loss tokens, about
    # 15% of the tokens a step runs on.
    metrics = read_run(tmp_path / "ok").metrics
    per_step = saved["compute"]["tokens_per_step"]
    assert 0.05 * per_step < metrics["loss_tokens_per_step"] < 0.4 * per_step
    assert metrics["train_flops"] == saved["compute"]["flops"]
    assert result.stability["diverged"] == 0.0


def test_a_diverged_run_is_counted_with_its_stability(tmp_path):
    result = run(tmp_path / "nan", "train.lr=1e9", "train.grad_clip=1e30")
    assert result.status == "diverged"
    saved = json.loads((tmp_path / "nan" / "result.json").read_text())
    assert saved["stability"]["diverged"] == 1.0
    # The report reads a diverged run's stability (and nothing else) as its metrics.
    metrics = read_run(tmp_path / "nan").metrics
    assert metrics["diverged"] == 1.0 and metrics["stalled"] == 1.0
    assert "final_val_loss" not in metrics


def test_a_resumed_run_counts_what_an_uninterrupted_one_does(tmp_path):
    whole = run(tmp_path / "whole", "train.max_steps=8", "train.eval_suite=false")
    run(tmp_path / "cut", "train.max_steps=8", "train.eval_suite=false", "train.stop_after=3")
    resumed = run(tmp_path / "cut", "train.max_steps=8", "train.eval_suite=false")
    assert resumed.stability == whole.stability
