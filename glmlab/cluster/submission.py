"""``submission.json``: which Slurm job runs which run directory of a sweep.

``glmlab submit`` writes it into the sweep directory when Slurm has accepted the jobs;
``glmlab status`` and ``glmlab collect`` read it to find the jobs. Submitting the same
sweep again (to resume what did not finish) updates the runs it resubmits and keeps their
earlier job ids::

    {"runs": {"<run dir name>": {"job_id": "123_0", "overrides": [...],
                                 "stdout": "...", "stderr": "...",
                                 "submitted_at": "...", "earlier_job_ids": [...]}},
     "submissions": [{"submitted_at": "...", "array_ids": ["123"], "jobs": 3, ...}]}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from glmlab.io import read_json, write_json_atomic

SUBMISSION = "submission.json"


@dataclass
class SubmittedJob:
    """One run of a sweep and the Slurm job that runs it."""

    run: str  # the run directory's name inside the sweep directory
    job_id: str  # submitit's id: "123_4" (array task) or "123"
    overrides: list[str] = field(default_factory=list)
    stdout: str = ""  # the job's log files (submitit's; task 0)
    stderr: str = ""
    submitted_at: str = ""
    earlier_job_ids: list[str] = field(default_factory=list)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_submission(sweep_dir: str | Path) -> dict[str, SubmittedJob]:
    """The sweep's submitted runs by run directory name (empty if it was never submitted)."""
    path = Path(sweep_dir) / SUBMISSION
    if not path.exists():
        return {}
    runs = read_json(path).get("runs", {})
    return {name: SubmittedJob(**{**job, "run": name}) for name, job in runs.items()}


def record_submission(
    sweep_dir: str | Path, jobs: list[SubmittedJob], info: dict[str, Any]
) -> Path:
    """Add ``jobs`` (and ``info`` about this submission) to the sweep's submission.json."""
    path = Path(sweep_dir) / SUBMISSION
    data: dict[str, Any] = read_json(path) if path.exists() else {}
    runs: dict[str, Any] = data.setdefault("runs", {})
    for job in jobs:
        before = runs.get(job.run)
        if before is not None and before["job_id"] != job.job_id:
            job.earlier_job_ids = [*before.get("earlier_job_ids", []), before["job_id"]]
        entry = asdict(job)
        del entry["run"]
        runs[job.run] = entry
    data.setdefault("submissions", []).append(info)
    return write_json_atomic(path, data)
