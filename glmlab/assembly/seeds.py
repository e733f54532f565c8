"""The seed a run's initialisation and data order draw from: its ``seed``, moved to another
stream by ``train.stream`` (the A/A control arm of a report, docs/REPORTS.md)."""

from __future__ import annotations

import numpy as np

from glmlab.config.spec import RunSpec

__all__ = ["stream_seed"]


def stream_seed(spec: RunSpec) -> int:
    """The seed itself without a stream (the default); with ``train.stream=k``, a 32-bit
    seed drawn from (seed, k) by numpy's ``SeedSequence`` (32 bits: torch's CPU generator
    reads no more), as unrelated to the seed's own stream as two seeds are."""
    if not spec.train.stream:
        return spec.seed
    state = np.random.SeedSequence([spec.seed, spec.train.stream]).generate_state(1)
    return int(state[0])
