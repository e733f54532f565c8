"""The state of every run of a sweep, from its run directory and what Slurm knows.

:func:`infer_state` is the whole rule (pure: tested on recorded files and Slurm records);
:func:`sweep_runs` gathers its inputs for a sweep directory, :func:`render_status` prints
them, and :func:`collect` writes the report of what has finished.

The rule, in order: a finished ``result.json`` (completed, diverged) is the state; a job
still in Slurm's hands is pending or running (with how often it was requeued); a result the
job wrote when it stopped (failed, timed out, cancelled, preempted) is the state, sharpened
by Slurm's end state where the job could only say "stopped"; with no result, Slurm's end
state, else Slurm's notice in the job's log, names what killed it. A job that ended without
writing a result is never "completed".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from glmlab.cluster.exit_reason import SLURM_END_STATUS, log_reason
from glmlab.cluster.slurm import SlurmJob, query_jobs
from glmlab.cluster.submission import SubmittedJob, read_submission
from glmlab.runs.layout import CONFIG, FINISHED, HYDRA_DIR, METRICS, RESULT, RunStatus
from glmlab.runs.result import RunResult, read_result


class LiveState(StrEnum):
    """States of a run that has not ended (next to :class:`RunStatus`'s end states)."""

    PENDING = "pending"  # submitted, waiting for resources (or requeued, waiting again)
    RUNNING = "running"
    UNKNOWN = "unknown"  # no result, and neither Slurm nor the job's log says anything


# Statuses a job writes when a signal stopped it: Slurm's end state may say more.
_SIGNALLED = frozenset({RunStatus.STOPPED, RunStatus.PREEMPTED})
_LOG_TAIL_BYTES = 256 * 1024
_METRICS_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Progress:
    """The last logged training step and loss of a run (from metrics.jsonl)."""

    step: int | None = None
    loss: float | None = None


@dataclass
class RunView:
    """One run of a sweep as ``glmlab status`` shows it."""

    name: str
    state: str  # a RunStatus or LiveState value
    detail: str = ""
    progress: Progress = Progress()
    requeues: int = 0
    job_id: str | None = None
    logs: dict[str, str] | None = None  # the job's stdout and stderr files

    @property
    def log(self) -> str | None:
        """The log to read about how the job ended: its stderr (where Slurm writes)."""
        return (self.logs or {}).get("stderr")


def _tail(path: Path, nbytes: int) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - nbytes))
        return f.read().decode("utf-8", errors="replace")


def last_progress(metrics: Path) -> Progress:
    """The last training step and loss in a metrics.jsonl (only its tail is read)."""
    if not metrics.exists():
        return Progress()
    rows = []
    for line in _tail(metrics, _METRICS_TAIL_BYTES).splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a cut first line, or a line being written
            continue
    # Rows a run wrote have an integer step and a number loss; others (damage) are skipped.
    rows = [r for r in rows if isinstance(r, dict) and type(r.get("step")) is int]
    trained = [r for r in rows if isinstance(r.get("loss"), int | float)]
    if trained:
        return Progress(trained[-1]["step"], float(trained[-1]["loss"]))
    return Progress(rows[-1]["step"] if rows else None)


def _requeue_note(requeues: int) -> str:
    return f"requeued {requeues}x" if requeues else ""


def infer_state(
    result: RunResult | None,
    job: SlurmJob | None,
    log_text: str | None,
) -> tuple[str, str]:
    """``(state, detail)`` of one run from its ``result.json`` (or None), Slurm's record
    of its job (or None) and its job's log (or None). See the module docstring."""
    status = result.status if result else None
    if result is not None and result.finished:
        return result.status, result.error or ""
    if job is not None and job.live:
        state = LiveState.RUNNING if job.running else LiveState.PENDING
        why = f"Slurm: {job.state}" + (f" ({job.reason})" if job.reason not in ("", "None") else "")
        if status:  # the previous instance's word, before the requeue
            why += f"; last stop: {status}"
        return state.value, why
    ended = SLURM_END_STATUS.get(job.state) if job is not None else None
    if status is not None:
        said = result.error or ""
        if status in _SIGNALLED and ended not in (None, RunStatus.FAILED):
            return ended.value, f"{said}; Slurm: {job.state}"
        found = log_reason(log_text) if status in _SIGNALLED and log_text else None
        if found is not None:
            return found[0].value, f"{said}; from the job's log: {found[1]}"
        return status, said
    if ended is not None and ended != RunStatus.FAILED:
        exit_code = f", exit code {job.exit_code}" if job.exit_code else ""
        return ended.value, f"Slurm: {job.state}{exit_code}"
    # Slurm says only "failed" (or nothing): its notice in the log may say what killed it.
    found = log_reason(log_text) if log_text else None
    if found is not None:
        return found[0].value, f"from the job's log: {found[1]}"
    if ended is not None:
        return ended.value, f"the job ended without writing {RESULT} (Slurm: {job.state})"
    return LiveState.UNKNOWN.value, "no result.json, and Slurm and the job's log say nothing"


def _job_for(name: str, result: RunResult | None, submitted: SubmittedJob | None) -> str | None:
    if submitted is not None:
        return submitted.job_id
    job_id = ((result.slurm_job if result else None) or {}).get("job_id")
    return str(job_id) if job_id else None


def _job_logs(result: RunResult | None, submitted: SubmittedJob | None) -> dict[str, str] | None:
    if submitted is not None and submitted.stderr:
        return {"stdout": submitted.stdout, "stderr": submitted.stderr}
    recorded = (result.job_logs if result else None) or {}
    logs = {k: v for k, v in recorded.items() if isinstance(v, str)}
    return logs or None


def _read_logs(logs: dict[str, str] | None) -> str | None:
    """The tails of the job's stdout and stderr (Slurm writes to stderr, submitit to both)."""
    paths = [Path(logs[k]) for k in ("stdout", "stderr") if logs and logs.get(k)]
    texts = [_tail(p, _LOG_TAIL_BYTES) for p in paths if p.is_file()]
    return "\n".join(texts) if texts else None


def run_names(sweep_dir: Path, submission: dict[str, SubmittedJob]) -> list[str]:
    """The sweep's runs: those submitted (in submission order), then those found only on
    disk."""
    on_disk = {
        p.name
        for p in sweep_dir.iterdir()
        if p.is_dir()
        and ((p / RESULT).exists() or (p / CONFIG).exists() or (p / HYDRA_DIR).exists())
    }
    return [*submission, *sorted(on_disk - submission.keys())]


def sweep_runs(
    sweep_dir: str | Path,
    *,
    query: Callable[[list[str]], dict[str, SlurmJob]] | None = None,
) -> list[RunView]:
    """Every run of the sweep and its state. ``query`` asks Slurm about job ids (default
    :func:`~glmlab.cluster.slurm.query_jobs`; a test passes recorded answers)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep directory {sweep_dir}")
    submission = read_submission(sweep_dir)
    names = run_names(sweep_dir, submission)
    # As the report reads them: a torn or odd result.json is a failed run naming the file.
    results = {name: read_result(sweep_dir / name) for name in names}
    job_ids = {n: _job_for(n, results[n], submission.get(n)) for n in names}
    jobs = (query or query_jobs)(sorted({j for j in job_ids.values() if j}))
    views = []
    for name in names:
        result, submitted, job_id = results[name], submission.get(name), job_ids[name]
        job = jobs.get(job_id) if job_id else None
        logs = _job_logs(result, submitted)
        status = result.status if result else None
        # The log is read only where the result and Slurm leave the cause open.
        generic = job is None or SLURM_END_STATUS.get(job.state) == RunStatus.FAILED
        needs_log = (status is None or status in _SIGNALLED) and generic
        state, detail = infer_state(result, job, _read_logs(logs) if needs_log else None)
        restarts = ((result.slurm_job if result else None) or {}).get("restarts", 0)
        requeues = max(job.restarts if job else 0, restarts if isinstance(restarts, int) else 0)
        views.append(
            RunView(
                name,
                state,
                detail,
                last_progress(sweep_dir / name / METRICS),
                requeues,
                job_id,
                logs,
            )
        )
    return views


def _fmt_loss(loss: float | None) -> str:
    return "" if loss is None else f"{loss:.4f}"


def render_status(views: list[RunView]) -> str:
    """One line per run: name, state, step, last loss, job id, requeues and why."""
    header = ("RUN", "STATE", "STEP", "LOSS", "JOB", "NOTE")
    rows = []
    for v in views:
        note = "; ".join(x for x in (_requeue_note(v.requeues), v.detail) if x)
        if v.log and v.state not in (*FINISHED, LiveState.PENDING, LiveState.RUNNING):
            note += f" (log: {v.log})"
        step = "" if v.progress.step is None else str(v.progress.step)
        rows.append((v.name, v.state, step, _fmt_loss(v.progress.loss), v.job_id or "", note))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    counts: dict[str, int] = {}
    for v in views:
        counts[v.state] = counts.get(v.state, 0) + 1
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" of {len(views)}")
    return "\n".join(lines)


def watch(
    sweep_dir: str | Path,
    interval: float,
    rounds: int | None = None,
    query: Callable[[list[str]], dict[str, SlurmJob]] | None = None,
) -> list[RunView]:
    """Print the status every ``interval`` seconds until no run is pending or running (or
    ``rounds`` times); return the last view."""
    n = 0
    while True:
        views = sweep_runs(sweep_dir, query=query)
        print(f"\x1b[2J\x1b[H{time.strftime('%H:%M:%S')}  {sweep_dir}\n{render_status(views)}")
        n += 1
        live = any(v.state in (LiveState.PENDING, LiveState.RUNNING) for v in views)
        if not live or (rounds is not None and n >= rounds):
            return views
        time.sleep(interval)
