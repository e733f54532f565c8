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
from glmlab.runs.stability import StabilityRecord


@dataclass
class TrainingRecord:
    """Tokens/s of every logged window, in order, the last validation loss and the
    stability counts (glmlab/runs/stability.py)."""

    tokens_per_s: list[float] = field(default_factory=list)
    val_loss: float | None = None
    stability: StabilityRecord = field(default_factory=StabilityRecord)

    def add(self, row: Mapping[str, Any]) -> None:
        """Take what the record keeps from one metrics row."""
        self.stability.add(row)
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


def local_norm(norm: torch.Tensor) -> torch.Tensor:
    """``clip_grad_norm_``'s total norm as a plain float32 tensor (FSDP2 returns a DTensor)."""
    full = getattr(norm, "full_tensor", None)
    return (full() if callable(full) else norm).detach().float()


class Window:
    """What a run accumulates between two log lines on ``device``: the summed loss, the
    largest pre-clipping gradient norm (tensors: no host sync per step), tokens and steps."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.grad = torch.zeros((), device=device)
        self.tokens = 0
        self.steps = 0

    def add_grad_norm(self, norm: torch.Tensor) -> None:
        """Keep the larger of the window's gradient norm and ``norm`` (one step's)."""
        self.grad = torch.maximum(self.grad, local_norm(norm))

    def reset(self) -> None:
        """Start the next window."""
        self.loss.zero_()
        self.grad.zero_()
        self.tokens, self.steps = 0, 0

    def state(self) -> torch.Tensor:
        """The window as a checkpoint holds it: loss, tokens, steps, gradient norm."""
        values = [float(self.loss), self.tokens, self.steps, float(self.grad)]
        return torch.tensor(values, dtype=torch.float64)

    def load(self, state: torch.Tensor) -> None:
        """Restore :meth:`state` (a checkpoint from before 0.2 has no gradient norm)."""
        loss, tokens, steps, *grad = state.tolist()
        self.loss.fill_(loss)
        self.grad.fill_(grad[0] if grad else 0.0)
        self.tokens, self.steps = int(tokens), int(steps)
