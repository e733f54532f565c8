"""A run's outcome: ``result.json`` (:class:`RunResult`, its one typed record, read and
written here only), the statuses of a sweep's runs and the one exit-status rule for a
sweep."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import types
import typing
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmlab.io import read_json, write_json_atomic
from glmlab.runs.layout import FINISHED, RESULT, UNFINISHED, RunStatus, iter_run_dirs
from glmlab.runs.metrics import last_step

log = logging.getLogger("glmlab")

_NOT_WRITTEN = {"written": False}  # field metadata: kept in memory, never in result.json

__all__ = [
    "RunResult",
    "one_line",
    "outcome_counts",
    "outcome_line",
    "read_result",
    "run_statuses",
    "sweep_exit_status",
    "sweep_statuses",
    "write_result",
]


def one_line(text: str | None, limit: int = 500) -> str | None:
    """``text`` on one line (whitespace runs collapsed), cut at ``limit`` characters: how
    an error goes into result.json and a report's table (error.log keeps the full text)."""
    if text is None:
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sweep_exit_status(statuses: Iterable[str]) -> int:
    """A sweep's exit status from its runs' statuses: 0 when every run completed or
    diverged (a diverged run is a result), 1 when any did not (failed, stopped, unfinished,
    ended by the cluster). The one rule for ``python -m glmlab -m`` and ``glmlab collect``."""
    return 0 if all(s in FINISHED for s in statuses) else 1


def outcome_counts(statuses: Iterable[str]) -> Counter[str]:
    """How many runs ended in each status."""
    return Counter(map(str, statuses))


def outcome_line(counts: Counter[str]) -> str:
    """``"4 runs: 3 completed, 0 diverged, 1 failed"``, then any other status present."""
    main = ("completed", "diverged", "failed")
    parts = [f"{counts.get(s, 0)} {s}" for s in main]
    parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in main and n]
    return f"{sum(counts.values())} runs: {', '.join(parts)}"


def run_statuses(sweep_dir: str | Path) -> dict[Path, str]:
    """The status of every run of a sweep directory by its directory, read as the report
    reads them (an unreadable result.json is ``failed``, a run without one ``unfinished``)."""
    statuses = {}
    for run_dir in iter_run_dirs(sweep_dir):
        result = read_result(run_dir)
        statuses[run_dir] = UNFINISHED if result is None else result.status
    return statuses


def sweep_statuses(sweep_dir: str | Path) -> list[str]:
    """The status of every run of a sweep directory (:func:`run_statuses`)."""
    return list(run_statuses(sweep_dir).values())


@dataclass
class RunResult:
    """A run's ``result.json``: every field it holds, typed, written and read only here.

    A run writes every field (None where it has no value: a failed run has no
    ``tokens_per_s``); a file written by an older glmlab reads with the missing fields at
    their defaults, a field of the wrong type reads as absent (logged), and keys this
    version does not know are kept in ``extra`` and written back. ``recorded`` and
    ``unreadable`` live in memory only.
    """

    status: str  # a RunStatus value (glmlab/runs/layout.py)
    step: int = 0  # optimizer steps done
    error: str | None = None  # on one line (error.log has the traceback)
    final_val_loss: float | None = None
    seed: Any = None  # the config's seed as composed (an int, or a string)
    overrides: list[str] = field(default_factory=list)  # every override of the run, sorted
    variant: list[str] = field(default_factory=list)  # its variant's overrides
    run_dir: str | None = None
    wall_time_s: float | None = None  # this process's time on the run
    tokens_per_s: float | None = None  # training throughput
    n_params: int | None = None
    attention: str | None = None  # the attention backend that ran (``auto`` resolved)
    # How it was chosen: AttentionSelection.as_dict() (glmlab/model/attention_select.py).
    attention_selection: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None  # the evaluation suite's final metrics
    # N, D, FLOPs: TrainingCompute.to_dict() (glmlab/ladder/compute.py).
    compute: dict[str, Any] | None = None
    # Loss spikes, gradient norms, of a completed or diverged run (glmlab/runs/stability.py).
    stability: dict[str, Any] | None = None
    # Code, plugins, libraries, machine, times (glmlab/runs/provenance.py).
    provenance: dict[str, Any] = field(default_factory=dict)
    job_logs: dict[str, str] | None = None  # the submitit job's stdout and stderr files
    slurm_job: dict[str, Any] | None = None  # {job_id, restarts}: the same run across requeues
    harness_error: str | None = None  # lm-eval tasks that failed after training (HARNESS.md)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know
    # In memory only: False when the run's failure could not be written to its directory.
    recorded: bool = field(default=True, metadata=_NOT_WRITTEN)
    # In memory only: the damaged result.json this failed result stands for (read_result).
    unreadable: str | None = field(default=None, metadata=_NOT_WRITTEN)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``result.json`` holds: every written field, then ``extra``."""
        values = {f.name: getattr(self, f.name) for f in _WRITTEN}
        return {**values, **{k: v for k, v in self.extra.items() if k not in values}}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = RESULT) -> RunResult:
        """The record of a ``result.json`` object (from ``source``, named in warnings).
        Raises ValueError without a string ``status``. Missing fields take their defaults
        (older files); a field of the wrong JSON type reads as absent, with a warning (a
        number where text is expected reads as its text, an integer as a float)."""
        if not isinstance(values.get("status"), str):
            raise ValueError("not a glmlab result (no 'status')")
        hints = _hints()
        known = {}
        for f in _WRITTEN:
            if values.get(f.name) is None:
                continue
            try:
                known[f.name] = _typed(values[f.name], hints[f.name])
            except ValueError as exc:
                log.warning("%s: field '%s' %s: read as absent", source, f.name, exc)
        extra = {k: v for k, v in values.items() if k not in _WRITTEN_NAMES}
        return cls(**known, extra=extra)


_WRITTEN = tuple(f for f in dataclasses.fields(RunResult) if f.name != "extra" and not f.metadata)
_WRITTEN_NAMES = frozenset(f.name for f in _WRITTEN)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(RunResult)


def _typed(value: Any, hint: Any) -> Any:
    """``value`` read from JSON as a field of type ``hint`` (None is handled by the caller:
    it means the default). Raises ValueError for a value of another JSON type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType):
        hint = args[0]  # every optional field has one type besides None
        args = list(typing.get_args(hint))
    origin = typing.get_origin(hint) or hint
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is Any:
        return value
    if origin is float and number:
        return float(value)
    if origin is str and number:
        return str(value)  # an error recorded as a number (hand-edited files)
    if origin is int and isinstance(value, float) and value.is_integer():
        return int(value)
    ok = isinstance(value, origin) and not (isinstance(value, bool) and origin is int)
    if ok and origin is list:
        ok = all(isinstance(v, args[0]) for v in value)
    if not ok:
        raise ValueError(f"is {json.dumps(value)[:80]}, not {_JSON_NAMES[origin]}")
    return value


_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    list: "a list of strings",
    dict: "an object",
}


def read_result(run_dir: str | Path) -> RunResult | None:
    """The run's result, or None when it has none. An unreadable or malformed result.json
    (torn, not JSON, not an object, no string ``status``) is returned as a failed result
    whose error names the file and whose ``unreadable`` is its path (never raised): one
    damaged run never stops a sweep or its report. A field of the wrong type reads as
    absent (:meth:`RunResult.from_dict`)."""
    path = Path(run_dir) / RESULT
    if not path.exists():
        return None
    try:
        values = read_json(path)
        if not isinstance(values, dict):
            raise ValueError("not a glmlab result (not a JSON object)")
        result = RunResult.from_dict(values, source=str(path))
        result.error = one_line(result.error)
        return result
    except (OSError, ValueError, TypeError) as exc:
        return RunResult(
            status=RunStatus.FAILED.value,
            step=last_step(run_dir),
            error=one_line(f"unreadable {path}: {type(exc).__name__}: {exc}"),
            run_dir=str(run_dir),
            unreadable=str(path),
        )


def write_result(run_dir: str | Path, result: RunResult) -> Path:
    """Write ``result.json`` atomically (the error on one line)."""
    values = result.to_dict()
    values["error"] = one_line(result.error)
    return write_json_atomic(Path(run_dir) / RESULT, values)
