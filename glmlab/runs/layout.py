"""The run-directory format: the one module that names a run directory's files and the
statuses a run can end in. Everything that writes or reads a run directory (the run, the
trainer, reports, compare, status/collect tools) takes its names from here; reading and
writing them is each file's own module: :mod:`glmlab.runs.result` (``result.json`` and
the outcomes), :mod:`glmlab.runs.identity` (``identity.json``), :mod:`glmlab.runs.lock`
(``.lock``), :mod:`glmlab.runs.metrics` (``metrics.jsonl``).

A run directory holds::

    config.yaml      the run's resolved config (the values its checkpoint was trained with)
    identity.json    the run's config identity: fingerprint, the values that shape results,
                     the plugin distributions' versions, and any accepted changes
    metrics.jsonl    one JSON object per logged step / validation / evaluation
    checkpoint.pt    the resumable training state (weights_only loadable); removed when the
                     run completes unless train.keep_checkpoint=last
    weights.pt       a completed run's final model weights (train.keep_checkpoint=final)
    result.json      the outcome: status, step, final metrics, error
    eval_items.json  the final evaluation suite's per-item scores and reference levels
    harness_items.json  lm-evaluation-harness tasks' per-item scores and metrics
                     (glmlab/harness/, docs/HARNESS.md), written at the end of a run with
                     harness.tasks or later by ``glmlab harness``
    error.log        the traceback of a failed run
    app.log          the run's log (Hydra's job logging)
    trackers.json    each experiment tracker's run id, so a resumed run continues it
    .hydra/          Hydra's record of the composed config and overrides
    .lock            held (flock) by the process working in the directory
    .stale/          earlier runs moved aside when the config changed (run.on_change=restart)

A sweep directory holds its run directories and::

    multirun.yaml    Hydra's record of the sweep (the report reads report.baseline/metric)
    report.md        the sweep report (glmlab.report), report.html the same as one page,
    loss_curves.png  its loss curves, results.csv one row per run

and ``glmlab compare`` writes compare.md, compare.html and compare_curves.png into its
output folder.

Guarantees and the tests behind them: docs/RELIABILITY.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

__all__ = [
    "APP_LOG",
    "CHECKPOINT",
    "COMPARE_CURVES",
    "COMPARE_HTML",
    "COMPARE_MD",
    "CONFIG",
    "ERROR_LOG",
    "EVAL_ITEMS",
    "FINISHED",
    "HARNESS_ITEMS",
    "HYDRA_DIR",
    "HYDRA_OVERRIDES",
    "IDENTITY",
    "LOCK",
    "LOSS_CURVES",
    "METRICS",
    "MULTIRUN",
    "REPORT_HTML",
    "REPORT_MD",
    "RESULT",
    "RESULTS_CSV",
    "STALE_DIR",
    "TRACKERS",
    "UNFINISHED",
    "WEIGHTS",
    "RunStatus",
    "checkpoint_step",
    "iter_run_dirs",
    "move_aside",
    "read_overrides",
]

log = logging.getLogger("glmlab")


CONFIG = "config.yaml"

IDENTITY = "identity.json"

METRICS = "metrics.jsonl"

CHECKPOINT = "checkpoint.pt"

WEIGHTS = "weights.pt"

RESULT = "result.json"

EVAL_ITEMS = "eval_items.json"

HARNESS_ITEMS = "harness_items.json"

ERROR_LOG = "error.log"

APP_LOG = "app.log"

HYDRA_DIR = ".hydra"

LOCK = ".lock"

STALE_DIR = ".stale"

TRACKERS = "trackers.json"

HYDRA_OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"  # the run's command-line overrides (Hydra)

# A sweep directory's own files (see the module docstring).
MULTIRUN = "multirun.yaml"

REPORT_MD = "report.md"

REPORT_HTML = "report.html"

LOSS_CURVES = "loss_curves.png"

RESULTS_CSV = "results.csv"

# What ``glmlab compare`` writes into its output folder.
COMPARE_MD = "compare.md"

COMPARE_HTML = "compare.html"

COMPARE_CURVES = "compare_curves.png"


class RunStatus(StrEnum):
    """How a run ended, as ``result.json`` records it (the values are the strings on disk)."""

    COMPLETED = "completed"  # trained to max_steps, evaluated
    DIVERGED = "diverged"  # stopped on a non-finite or exploding loss: a result, not an error
    FAILED = "failed"  # an exception; error.log holds the traceback
    STOPPED = "stopped"  # interrupted at a checkpoint (preemption, SIGTERM, stop_after)
    # Ended by the cluster (glmlab/cluster): written by the job when it could (a signal it
    # handled), else inferred by ``glmlab status``/``collect`` from Slurm and the job's log.
    PREEMPTED = "preempted"  # SIGTERM for preemption or requeue: checkpointed, requeued
    TIMED_OUT = "timed_out"  # the time limit (and no requeue left)
    CANCELLED = "cancelled"  # scancel
    OUT_OF_MEMORY = "out_of_memory"  # killed by the OOM killer
    NODE_FAILURE = "node_failure"  # the node died under the job


# Runs whose outcome is a result: a rerun of the sweep skips them (if their config is unchanged).
FINISHED: frozenset[RunStatus] = frozenset({RunStatus.COMPLETED, RunStatus.DIVERGED})

UNFINISHED = "unfinished"  # a run directory without result.json (killed, out of time)


def read_overrides(run_dir: str | Path) -> list[str]:
    """The run's command-line overrides as Hydra saved them (``.hydra/overrides.yaml``);
    [] when the file is absent or unreadable."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / HYDRA_OVERRIDES
    try:
        return [str(o) for o in OmegaConf.load(path)]  # type: ignore[union-attr]
    except Exception:  # absent or damaged: the run is listed without its overrides
        return []


def move_aside(run_dir: str | Path) -> Path:
    """Move everything of the run in ``run_dir`` (its config, identity, metrics, checkpoint,
    weights, result, evaluation items, logs, tracker ids, Hydra's records: all but the lock
    and earlier stale runs) into ``.stale/<time>/`` inside it; return that folder. Nothing
    of the old run stays beside the new one, and nothing moved aside is overwritten."""
    run_dir = Path(run_dir)
    dest = run_dir / STALE_DIR / time.strftime("%Y-%m-%d_%H-%M-%S")
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{dest.name.split('+')[0]}+{n}")
        n += 1
    dest.mkdir(parents=True)
    for path in sorted(run_dir.iterdir()):
        if path.name not in (LOCK, STALE_DIR):
            os.replace(path, dest / path.name)
    return dest


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step ``run_dir``'s checkpoint holds, where a rerun resumes (None: no readable
    checkpoint). Memory-maps the file: only the step is read."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["step"])
    except Exception:  # damaged or foreign: the resume itself names the problem
        return None


def iter_run_dirs(sweep_dir: str | Path) -> Iterator[Path]:
    """The run directories of a sweep: its subfolders holding a result or a config."""
    for p in sorted(Path(sweep_dir).iterdir()):
        if p.is_dir() and ((p / RESULT).exists() or (p / CONFIG).exists()):
            yield p
