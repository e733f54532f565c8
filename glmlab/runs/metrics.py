"""``metrics.jsonl``: how far a run got on disk, and the repair that makes the file agree
with the checkpoint a run resumes from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from glmlab.io import iter_jsonl, write_jsonl_atomic
from glmlab.runs.layout import METRICS

__all__ = [
    "last_step",
    "repair_metrics",
]

log = logging.getLogger("glmlab")


def last_step(run_dir: str | Path) -> int:
    """The last step metrics.jsonl records (0 if none): how far a run got on disk."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return 0
    try:
        return max((int(r.get("step", 0)) for _, r in iter_jsonl(path) if r), default=0)
    except (OSError, ValueError, TypeError):
        return 0


def repair_metrics(
    path: str | Path, through_step: int, *, drop_eval_at_step: bool = False
) -> list[dict[str, Any]]:
    """Make metrics.jsonl agree with a checkpoint of step ``through_step`` (0: no
    checkpoint): keep the rows up to that step, drop the later ones (they are logged again)
    and any line that is not a JSON object (a torn write, with a warning). The file is
    rewritten atomically, so it always ends with a newline; returns the kept rows.
    ``drop_eval_at_step``: also drop the evaluation suite's row at ``through_step`` (the
    final suite runs after the last checkpoint, so a resume there runs it again)."""
    path = Path(path)
    if not path.exists():
        return []
    kept, later = [], 0
    for lineno, row in iter_jsonl(path):
        if row is None or not isinstance(row.get("step"), int):
            log.warning("%s:%d: dropped a damaged line (a torn write?)", path, lineno)
        elif row["step"] < through_step or (
            row["step"] == through_step and not (drop_eval_at_step and "eval" in row)
        ):
            kept.append(row)
        else:
            later += 1
    if later:
        log.info(
            "%s: dropped %d rows logged after the checkpoint (step %d)", path, later, through_step
        )
    write_jsonl_atomic(path, kept)
    return kept
