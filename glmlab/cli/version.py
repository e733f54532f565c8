"""glmlab's, torch's and Python's versions: ``--version`` of both commands."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["version_text", "versions"]


def versions() -> dict[str, str]:
    """glmlab's, torch's and Python's versions (recorded in every result.json)."""
    import torch

    try:
        glmlab_version = importlib.metadata.version("glmlab")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        glmlab_version = "unknown"
    return {
        "glmlab": glmlab_version,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def version_text() -> str:
    """``glmlab 0.1.0 (torch 2.13.0, Python 3.11.7)``."""
    v = versions()
    return f"glmlab {v['glmlab']} (torch {v['torch']}, Python {v['python']})"
