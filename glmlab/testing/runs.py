"""End-to-end smoke runs: ``python -m glmlab`` at a size that takes seconds on a CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A CPU-seconds-sized GLM: append these to a run's or sweep's overrides.
TINY_OVERRIDES: tuple[str, ...] = (
    "model.n_layers=1",
    "model.dim=32",
    "model.n_heads=2",
    "data.vocab_size=512",
    "data.n_sentinels=16",
    "data.seq_len=64",
    "train.batch_size=4",
    "train.max_steps=6",
    "train.warmup_steps=2",
    "train.eval_interval=3",
    "train.eval_batches=2",
    "train.log_interval=2",
    "train.checkpoint_interval=3",
    # A small evaluation suite: 8 passages per task instead of the default (a test about
    # the suite itself sets its own size).
    "train.eval_suite_items=8",
    "train.cloze_items=8",
    "train.classify_items=8",
    "train.progress=false",
    # Tensors this small run fastest on one thread; more only spin on a busy machine.
    "train.threads=1",
    # On the CPU on any machine: python -m glmlab's scale=auto then picks scale=cpu too
    # (glmlab/config/scale.py), so a GPU machine runs the same tiny runs into the same
    # folders (scale=gpu would write under runs/<name>_gpu and sweeps/<name>_gpu).
    "train.device=cpu",
)


def run_glmlab(
    args: list[str], cwd: str | Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m glmlab ARGS`` in a subprocess in ``cwd``, as a user runs it (Hydra's
    short error messages); stdout and stderr are captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "glmlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
