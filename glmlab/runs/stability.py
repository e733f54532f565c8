"""Training stability as an outcome: loss spikes and gradient-norm excursions, counted from
the rows a run logs (one per ``train.log_interval`` window), so a resumed run counts exactly
what an uninterrupted one does.

- A **loss spike** is a window whose mean training loss rises more than
  :data:`SPIKE_NATS` above the lowest window loss before it; consecutive such windows are
  one spike (counted where it starts).
- A **gradient-norm excursion** is a window whose largest pre-clipping gradient norm
  (``grad_norm`` in metrics.jsonl) is more than :data:`EXCURSION_FACTOR` times the median of
  the earlier windows' (after :data:`EXCURSION_WARMUP` windows); consecutive ones count once.
- A run that **diverged** (its loss became NaN or infinite) keeps the counts up to then and
  ``diverged = 1``: a report counts it, never drops it (docs/EVALUATION.md, "Stability").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXCURSION_FACTOR",
    "EXCURSION_WARMUP",
    "SPIKE_NATS",
    "STABILITY_METRICS",
    "StabilityRecord",
]

SPIKE_NATS = 0.5  # a window's loss this far above the lowest before it starts a spike
EXCURSION_FACTOR = 5.0  # a window's max gradient norm this many times the earlier median
EXCURSION_WARMUP = 5  # windows before excursions are judged (the median needs a history)

# What result.json's ``stability`` holds, as a report reads it (glmlab/report/metrics.py).
STABILITY_METRICS = ("diverged", "loss_spikes", "grad_norm_excursions", "max_grad_norm")


@dataclass
class StabilityRecord:
    """Spikes and excursions so far (see the module docstring), fed one logged row at a time."""

    loss_spikes: int = 0
    grad_norm_excursions: int = 0
    max_grad_norm: float = 0.0
    _lowest: float = math.inf
    _in_spike: bool = False
    _in_excursion: bool = False
    _norms: list[float] = field(default_factory=list)

    def add(self, row: Mapping[str, Any]) -> None:
        """Count what one metrics row (a training window) shows."""
        loss = row.get("loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            spiking = loss > self._lowest + SPIKE_NATS
            self.loss_spikes += spiking and not self._in_spike
            self._in_spike = spiking
            self._lowest = min(self._lowest, float(loss))
        norm = row.get("grad_norm")
        if isinstance(norm, int | float) and math.isfinite(norm):
            excursion = len(self._norms) >= EXCURSION_WARMUP and norm > (
                EXCURSION_FACTOR * statistics.median(self._norms)
            )
            self.grad_norm_excursions += excursion and not self._in_excursion
            self._in_excursion = excursion
            self._norms.append(float(norm))
            self.max_grad_norm = max(self.max_grad_norm, float(norm))

    def summary(self, *, diverged: bool) -> dict[str, float]:
        """result.json's ``stability``: the counts, the largest gradient norm, and whether the
        run diverged (1.0) or not (0.0)."""
        return {
            "diverged": 1.0 if diverged else 0.0,
            "loss_spikes": float(self.loss_spikes),
            "grad_norm_excursions": float(self.grad_norm_excursions),
            "max_grad_norm": round(self.max_grad_norm, 4),
        }
