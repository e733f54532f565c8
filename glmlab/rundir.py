"""The run-directory format: the one module that names a run directory's files and the
statuses a run can end in. Everything that writes or reads a run directory (the run, the
trainer, reports, compare, status/collect tools) takes its names from here.

A run directory holds::

    config.yaml      the run's resolved config
    metrics.jsonl    one JSON object per logged step / validation / evaluation
    checkpoint.pt    the resumable training state (weights_only loadable); removed when the
                     run completes unless train.keep_checkpoint=last
    weights.pt       a completed run's final model weights (train.keep_checkpoint=final)
    result.json      the outcome: status, step, final metrics, error
    eval_items.json  the final evaluation suite's per-item scores and reference levels
    error.log        the traceback of a failed run
    app.log          the run's log (Hydra's job logging)
    .hydra/          Hydra's record of the composed config and overrides
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

__all__ = [
    "APP_LOG",
    "CHECKPOINT",
    "CONFIG",
    "ERROR_LOG",
    "EVAL_ITEMS",
    "FINISHED",
    "HYDRA_DIR",
    "KEEP_CHECKPOINT",
    "METRICS",
    "RESULT",
    "WEIGHTS",
    "RunStatus",
    "run_files",
]

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
# train.keep_checkpoint: what a completed run keeps (see the module docstring).
KEEP_CHECKPOINT = ("final", "last", "none")
RESULT = "result.json"
EVAL_ITEMS = "eval_items.json"
ERROR_LOG = "error.log"
APP_LOG = "app.log"
HYDRA_DIR = ".hydra"


class RunStatus(StrEnum):
    """How a run ended, as ``result.json`` records it (the values are the strings on disk)."""

    COMPLETED = "completed"  # trained to max_steps, evaluated
    DIVERGED = "diverged"  # stopped on a non-finite or exploding loss: a result, not an error
    FAILED = "failed"  # an exception; error.log holds the traceback
    STOPPED = "stopped"  # interrupted at a checkpoint (preemption, SIGTERM, stop_after)


# Runs whose outcome is a result: a rerun of the sweep skips them.
FINISHED: frozenset[RunStatus] = frozenset({RunStatus.COMPLETED, RunStatus.DIVERGED})


def run_files(run_dir: str | Path) -> dict[str, Path]:
    """The paths of a run directory's files, by their constant's name (lower case)."""
    root = Path(run_dir)
    names = {
        "config": CONFIG,
        "metrics": METRICS,
        "checkpoint": CHECKPOINT,
        "weights": WEIGHTS,
        "result": RESULT,
        "eval_items": EVAL_ITEMS,
        "error_log": ERROR_LOG,
        "app_log": APP_LOG,
    }
    return {key: root / name for key, name in names.items()}
