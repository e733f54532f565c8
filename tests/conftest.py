"""Shared fixtures: one on-disk data cache per test session, tiny run settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from glmlab.testing.runs import TINY_OVERRIDES, run_glmlab  # noqa: F401 - re-exported to the tests

# A CPU-minute-sized GLM for end-to-end tests: the settings that make runs take seconds.
TINY = list(TINY_OVERRIDES)

# Tiny tensors run fastest on one thread; a second one only spins (badly, on a busy machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def glmlab_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Share prepared corpora/tokenizers across the session; keep the user's cache clean."""
    path = Path(os.environ.get("GLMLAB_TEST_CACHE") or tmp_path_factory.mktemp("glmlab-cache"))
    os.environ["GLMLAB_CACHE"] = str(path)
    return path
