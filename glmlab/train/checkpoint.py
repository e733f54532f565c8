"""Atomic checkpoints that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from glmlab.io import atomic_write

__all__ = ["CheckpointError", "checkpoint_mismatch", "load_checkpoint", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names it and says what to do."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write keeps the previous file."""
    atomic_write(path, lambda f: torch.save(state, f))


def _reason(path: Path, exc: BaseException) -> str:
    # torch's own text for a refused object advises turning weights_only off: never shown.
    if path.stat().st_size == 0:
        return "it is empty"
    if not zipfile.is_zipfile(path):
        return "it is damaged or truncated (not a torch checkpoint archive)"
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds objects other than tensors and plain data, which are never loaded"
    if isinstance(exc, EOFError) or "failed finding central directory" in str(exc):
        return "it is empty or truncated"
    if isinstance(exc, zipfile.BadZipFile | RuntimeError):
        return "it is damaged (not a readable torch zip archive)"
    return f"{type(exc).__name__}"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain data only).
    An unreadable one raises :class:`CheckpointError` naming the file and what to do."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # garbage bytes fail anywhere in torch's unpickler
        raise CheckpointError(
            f"cannot load checkpoint {path}: {_reason(path, exc)}. Delete it to restart the run from "
            "step 0, or put back a good copy"
        ) from None
    return state


def checkpoint_mismatch(path: str | Path, model_state: dict[str, Any]) -> str | None:
    """How the checkpoint at ``path`` does not fit ``model_state`` (the first tensor whose
    shape differs, or the names only one side has); None when it fits or there is none.
    A resume across a config change checks it before writing anything."""
    path = Path(path)
    if not path.exists():
        return None
    saved = load_checkpoint(path)["model"]
    for name, tensor in model_state.items():
        if name in saved and tuple(saved[name].shape) != tuple(tensor.shape):
            return f"{name} is {list(saved[name].shape)} there, {list(tensor.shape)} now"
    only = sorted(set(model_state) ^ set(saved))
    return f"weights only one side has: {', '.join(only[:3])}" if only else None
