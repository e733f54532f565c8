"""What Slurm knows about a sweep's jobs, from whichever of its sources answers.

Three sources, freshest last: the job-completion log (``JobCompType=jobcomp/filetxt``: one
line per ended or requeued job instance, kept for good), accounting (``sacct``, where
slurmdbd runs), and the controller's memory (``scontrol show job``: live jobs, and ended ones
for ``MinJobAge`` seconds). Each is parsed by a pure function (tested on recorded output)
and queried by a small wrapper that returns nothing when the command fails, so a cluster
without accounting, or no cluster at all, only means less is known.

Job ids are submitit's: ``"123"`` for a single job, ``"123_4"`` for task 4 of array 123.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

# Job states in which the job is still in Slurm's hands (not ended).
LIVE_STATES: frozenset[str] = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)
# Of those, the ones in which the job's processes run.
RUNNING_STATES: frozenset[str] = frozenset(
    {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "CONFIGURING"}
)
# States of a job instance that was requeued (jobcomp writes one when it requeues a job).
REQUEUE_STATES: frozenset[str] = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize
_KEY_VALUE = re.compile(r"(\S+?)=(\S*)")


@dataclass(frozen=True)
class SlurmJob:
    """One job (or array task) as a Slurm source reports it."""

    job_id: str  # "123" or "123_4"
    state: str  # Slurm's state name, e.g. RUNNING, TIMEOUT, OUT_OF_MEMORY
    reason: str = ""  # why it pends / ended, where the source says
    restarts: int = 0  # how often it was requeued
    exit_code: str = ""  # "code:signal"
    source: str = ""  # scontrol | sacct | jobcomp

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def key_values(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one line of ``scontrol -o`` or jobcomp output (values that
    contain spaces, like a ``Command``, are cut at the first one; none used here do)."""
    return dict(_KEY_VALUE.findall(line))


def _state(text: str) -> str:
    # sacct writes "CANCELLED by 0"; scontrol may add flags after a "+".
    return text.split()[0].split("+")[0].upper() if text.strip() else "UNKNOWN"


def expand_task_ids(spec: str) -> list[int]:
    """Array task ids of a range like ``"5"``, ``"0-9%2"`` or ``"1,3,5-7"``."""
    ids: list[int] = []
    for part in spec.split("%")[0].strip("[]").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            continue
        ids.extend(range(int(first), int(last or first) + 1))
    return ids


def _job_ids(fields: dict[str, str]) -> list[str]:
    array = fields.get("ArrayJobId", "")
    task = fields.get("ArrayTaskId", "")
    if array and task and array not in ("0", "4294967294"):
        return [f"{array}_{t}" for t in expand_task_ids(task)]
    return [fields["JobId"]] if "JobId" in fields else []


def parse_scontrol_jobs(text: str) -> dict[str, SlurmJob]:
    """``scontrol show job -o`` output (one job per line) by job id."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        fields = key_values(line)
        for job_id in _job_ids(fields):
            jobs[job_id] = SlurmJob(
                job_id,
                _state(fields.get("JobState", "")),
                reason=fields.get("Reason", ""),
                restarts=int(fields.get("Restarts", "0") or 0),
                exit_code=fields.get("ExitCode", ""),
                source="scontrol",
            )
    return jobs


def parse_jobcomp(text: str) -> dict[str, SlurmJob]:
    """A ``jobcomp/filetxt`` log by job id: the latest line of each job wins, and each
    earlier line of it in a requeue state counts as one restart."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        fields = key_values(line)
        for job_id in _job_ids(fields):
            state = _state(fields.get("JobState", ""))
            before = jobs.get(job_id)
            restarts = 0 if before is None else before.restarts + (before.state in REQUEUE_STATES)
            jobs[job_id] = SlurmJob(
                job_id,
                state,
                restarts=restarts,
                exit_code=fields.get("ExitCode", ""),
                source="jobcomp",
            )
    return jobs


SACCT_FORMAT = "JobID,State,ExitCode,Reason"


def parse_sacct(text: str) -> dict[str, SlurmJob]:
    """``sacct -X -D -n -P -o JobID,State,ExitCode,Reason`` by job id: with ``-D`` every
    instance of a requeued job is a line; the last is the current one."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 3 or not parts[0] or "[" in parts[0]:  # "[": a pending range
            continue
        job_id, state, exit_code = parts[0], _state(parts[1]), parts[2]
        before = jobs.get(job_id)
        jobs[job_id] = SlurmJob(
            job_id,
            state,
            reason=parts[3] if len(parts) > 3 else "",
            restarts=0 if before is None else before.restarts + 1,
            exit_code=exit_code,
            source="sacct",
        )
    return jobs


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` as ``{name: value}``."""
    config = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and " " not in name.strip():
            config[name.strip()] = value.strip()
    return config


def max_array_size(config: dict[str, str]) -> int:
    """The largest job array the cluster accepts (task ids run 0 to MaxArraySize - 1)."""
    value = config.get("MaxArraySize", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_ARRAY_SIZE


def jobcomp_file(config: dict[str, str]) -> Path | None:
    """The job-completion log, where the cluster writes one to a file."""
    if config.get("JobCompType") == "jobcomp/filetxt" and config.get("JobCompLoc"):
        return Path(config["JobCompLoc"])
    return None


# -- querying a live cluster --------------------------------------------------------------


def run_slurm(*args: str, timeout: float = 30) -> str | None:
    """A Slurm command's stdout, or None when it is missing, fails or hangs."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def slurm_config() -> dict[str, str]:
    """The cluster's config (empty when no controller answers)."""
    return parse_config(run_slurm("scontrol", "show", "config") or "")


def _array_ids(job_ids: Iterable[str]) -> list[str]:
    return sorted({j.split("_")[0] for j in job_ids})


def query_jobs(
    job_ids: Collection[str], config: dict[str, str] | None = None
) -> dict[str, SlurmJob]:
    """What the cluster knows about ``job_ids``: the job-completion log, then ``sacct``,
    then ``scontrol`` (fresher sources override older ones; restarts are the most any
    source counted). Empty where nothing answers."""
    if not job_ids:
        return {}
    config = slurm_config() if config is None else config
    wanted = set(job_ids)
    arrays = ",".join(_array_ids(wanted))
    found: list[dict[str, SlurmJob]] = []
    log = jobcomp_file(config)
    if log is not None and log.is_file() and os.access(log, os.R_OK):
        found.append(parse_jobcomp(log.read_text(errors="replace")))
    sacct = run_slurm("sacct", "-X", "-D", "-n", "-P", "-o", SACCT_FORMAT, "-j", arrays)
    if sacct:
        found.append(parse_sacct(sacct))
    # Every job the controller holds (it takes no id list, and fails on an unknown id).
    found.append(parse_scontrol_jobs(run_slurm("scontrol", "show", "job", "-o") or ""))
    jobs: dict[str, SlurmJob] = {}
    for source in found:
        for job_id, job in source.items():
            if job_id in wanted:
                before = jobs.get(job_id)
                restarts = max(job.restarts, before.restarts if before else 0)
                jobs[job_id] = replace(job, restarts=restarts)
    # jobcomp logs the array tasks that never started (cancelled while pending) as one line
    # under the array's own id, without task ids: it stands for every task not seen.
    for job_id in wanted - jobs.keys():
        array = job_id.partition("_")[0]
        master = next(
            (s[array] for s in found if array in s and s[array].source == "jobcomp"), None
        )
        if "_" in job_id and master is not None:
            jobs[job_id] = replace(master, job_id=job_id)
    return jobs
