"""What the trainer remembers of its own metrics: each logging window's throughput and the
latest validation loss, kept in memory as they are logged (never read back from
``metrics.jsonl``); a resumed run restores it once, from the rows that agree with its
checkpoint (:func:`glmlab.runs.metrics.repair_metrics`)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from glmlab.runs.device_memory import peak_memory_mb


@dataclass
class TrainingRecord:
    """Tokens/s of every logged window, in order, and the last validation loss."""

    tokens_per_s: list[float] = field(default_factory=list)
    val_loss: float | None = None

    def add(self, row: Mapping[str, Any]) -> None:
        """Take what the record keeps from one metrics row."""
        if row.get("tokens_per_s"):
            self.tokens_per_s.append(float(row["tokens_per_s"]))
        if row.get("val_loss") is not None:
            self.val_loss = float(row["val_loss"])

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> TrainingRecord:
        """The record of a run that logged ``rows`` (in order)."""
        record = cls()
        for row in rows:
            record.add(row)
        return record

    def efficiency(self, device: torch.device) -> dict[str, float]:
        """Training throughput (median tokens/s over the logged windows, robust to the slow
        first one) and peak memory in MiB."""
        out = {"peak_mem_mb": round(peak_memory_mb(device), 1)}
        if self.tokens_per_s:
            out["train_tokens_per_s"] = round(statistics.median(self.tokens_per_s), 1)
        return out
