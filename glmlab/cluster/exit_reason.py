"""Why a run ended when the cluster ended it: told by the job itself where it can, read
from Slurm's words in the job's log where it could not.

In the job (:func:`slurm_job`, :func:`interruption`, :func:`failure_status`): a run that a
signal stops after its checkpoint records in ``result.json`` what Slurm is doing to it (a
time limit, a cancel, a requeue); submitit's "timed-out too many times" is a time-out, not a
crash. Afterwards (:func:`log_reason`): Slurm writes ``*** JOB 12 ON node CANCELLED AT ...
DUE TO TIME LIMIT ***`` and OOM-kill notices into the job's own log, which tells a run
killed outright (nothing written) apart from one that crashed.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

from glmlab.cluster.slurm import REQUEUE_STATES, key_values, run_slurm
from glmlab.runs.layout import RunStatus

# A Slurm end state → the run status it means for a run that wrote no result of its own.
# COMPLETED without a result.json is a job that ended without finishing its run: failed.
SLURM_END_STATUS: dict[str, RunStatus] = {
    "TIMEOUT": RunStatus.TIMED_OUT,
    "DEADLINE": RunStatus.TIMED_OUT,
    "CANCELLED": RunStatus.CANCELLED,
    "REVOKED": RunStatus.CANCELLED,
    "OUT_OF_MEMORY": RunStatus.OUT_OF_MEMORY,
    "NODE_FAIL": RunStatus.NODE_FAILURE,
    "BOOT_FAIL": RunStatus.NODE_FAILURE,
    "PREEMPTED": RunStatus.PREEMPTED,
    "FAILED": RunStatus.FAILED,
    "COMPLETED": RunStatus.FAILED,
    "SPECIAL_EXIT": RunStatus.FAILED,
}

# What Slurm (slurmstepd) and submitit write into a job's log, latest occurrence wins.
_LOG_MARKERS: list[tuple[re.Pattern[str], RunStatus]] = [
    (re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+ DUE TO TIME LIMIT"), RunStatus.TIMED_OUT),
    (re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+ DUE TO PREEMPTION"), RunStatus.PREEMPTED),
    (
        re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+ DUE TO NODE FAIL"),
        RunStatus.NODE_FAILURE,
    ),
    (re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+( by \S+)? \*\*\*"), RunStatus.CANCELLED),
    (re.compile(r"oom[-_ ]kill|Out Of Memory|out-of-memory handler"), RunStatus.OUT_OF_MEMORY),
    (re.compile(r"Job not requeued because: timed-out too many times"), RunStatus.TIMED_OUT),
]


def log_reason(text: str) -> tuple[RunStatus, str] | None:
    """The last of Slurm's (or submitit's) end-of-job notices in a job's log, as a status
    and the line that says so; None if the log holds none."""
    best: tuple[int, RunStatus, str] | None = None
    for pattern, status in _LOG_MARKERS:
        for match in pattern.finditer(text):
            if best is None or match.start() > best[0]:
                start = text.rfind("\n", 0, match.start()) + 1
                end = text.find("\n", match.end())
                best = (match.start(), status, text[start : end if end >= 0 else None].strip())
    return None if best is None else (best[1], best[2])


# -- in the job ----------------------------------------------------------------------------


def slurm_job() -> dict[str, Any] | None:
    """This process's Slurm job (submitit's id form) and how often Slurm restarted it
    (requeues), or None outside Slurm."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job_id = env["SLURM_JOB_ID"]
    return {"job_id": job_id, "restarts": int(env.get("SLURM_RESTART_COUNT") or 0)}


def failure_status(exc: BaseException) -> RunStatus:
    """The status of a run that ``exc`` ended: submitit's refusal to requeue a timed-out
    job again (``UncompletedJobError``) is a time-out; anything else a failure."""
    if type(exc).__name__ == "UncompletedJobError" and "timed-out" in str(exc):
        return RunStatus.TIMED_OUT
    return RunStatus.FAILED


def _own_job_state() -> str | None:
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    out = run_slurm("scontrol", "show", "job", "-o", job, timeout=5)
    return key_values(out).get("JobState") if out else None


def interruption(signum: int) -> dict[str, str]:
    """``status`` and ``error`` of a run stopped by ``signum`` after its checkpoint.
    submitit's signal (SIGUSR2) means the time limit is near; for SIGTERM, Slurm's view of
    the job says whether it was cancelled, timed out or requeued (preempted)."""
    name = signal.Signals(signum).name
    timeout_signal = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    if name == timeout_signal and os.environ.get("SUBMITIT_EXECUTOR"):
        return {
            "status": RunStatus.TIMED_OUT.value,
            "error": f"{name}: the job's time limit is near; checkpointed "
            "(submitit requeues the job while max_num_timeout allows)",
        }
    state = _own_job_state()
    if state in REQUEUE_STATES:
        status = RunStatus.PREEMPTED
    elif state in SLURM_END_STATUS and state not in ("COMPLETED", "FAILED"):
        status = SLURM_END_STATUS[state]
    else:
        status = RunStatus.STOPPED
    return {
        "status": status.value,
        # Outside Slurm (a local sweep's Ctrl-C or SIGTERM) there is no job state to name.
        "error": f"{name} (Slurm job state {state}): checkpointed and stopped"
        if state
        else f"{name}: checkpointed and stopped",
    }
