"""Shared fixtures: one on-disk data cache per test session, tiny run settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A CPU-minute-sized GLM for end-to-end tests: the settings that make runs take seconds.
TINY = [
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
    "train.progress=false",
]


@pytest.fixture(scope="session", autouse=True)
def glmlab_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Share prepared corpora/tokenizers across the session; keep the user's cache clean."""
    path = Path(os.environ.get("GLMLAB_TEST_CACHE") or tmp_path_factory.mktemp("glmlab-cache"))
    os.environ["GLMLAB_CACHE"] = str(path)
    return path


def run_glmlab(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m glmlab ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "glmlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
