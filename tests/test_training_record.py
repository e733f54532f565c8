"""The trainer's in-memory record of its metrics: throughput and validation loss."""

from __future__ import annotations

import torch

from glmlab.train.record import TrainingRecord


def test_record_keeps_window_rates_and_the_last_validation_loss():
    rows = [
        {"step": 2, "loss": 5.0, "lr": 0.1, "tokens_per_s": 100.0},
        {"step": 2, "val_loss": 4.5},
        {"step": 4, "loss": 4.0, "lr": 0.1, "tokens_per_s": 300.0},
        {"step": 4, "eval": {"cloze_acc": 0.5}},
        {"step": 6, "loss": 3.0, "lr": 0.1, "tokens_per_s": 200.0},
        {"step": 6, "val_loss": 3.5},
    ]
    record = TrainingRecord.from_rows(rows)
    assert record.tokens_per_s == [100.0, 300.0, 200.0]
    assert record.val_loss == 3.5
    again = TrainingRecord()
    for row in rows:
        again.add(row)
    assert again == record
    out = record.efficiency(torch.device("cpu"))
    assert out["train_tokens_per_s"] == 200.0  # the median, robust to a slow first window
    assert out["peak_mem_mb"] > 0


def test_empty_record_has_no_throughput_and_no_validation_loss():
    record = TrainingRecord.from_rows([])
    assert record.val_loss is None
    assert "train_tokens_per_s" not in record.efficiency(torch.device("cpu"))
