"""A run's outcome: ``result.json`` (:class:`RunResult`, read and written here only), the
statuses of a sweep's runs and the one exit-status rule for a sweep."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmlab.io import read_json, write_json_atomic
from glmlab.runs.layout import FINISHED, RESULT, UNFINISHED, RunStatus, iter_run_dirs
from glmlab.runs.metrics import last_step

__all__ = [
    "NOT_RESULT_KEYS",
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
    """A run's ``result.json``: the fields every tool relies on, plus whatever else the run
    recorded (``extra``: throughput, the evaluation suite, provenance, ...)."""

    status: str
    step: int = 0
    error: str | None = None
    final_val_loss: float | None = None
    seed: Any = None
    overrides: list[str] = field(default_factory=list)
    variant: list[str] = field(default_factory=list)
    run_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``: a field, else an ``extra`` entry, else ``default``."""
        if key != "extra" and key in _RESULT_FIELDS:
            return getattr(self, key)
        return self.extra.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        extra = known.pop("extra")
        return {**extra, **known}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names}
        return cls(**known, extra=extra)


_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(RunResult))

NOT_RESULT_KEYS = ("recorded",)  # keys execute_run returns but never writes


def read_result(run_dir: str | Path) -> RunResult | None:
    """The run's result, or None when it has none. An unreadable or malformed result.json
    is returned as a failed result whose error names the file (never raised): one damaged
    run never stops a sweep or its report."""
    path = Path(run_dir) / RESULT
    if not path.exists():
        return None
    try:
        values = read_json(path)
        if not isinstance(values, dict) or not isinstance(values.get("status"), str):
            raise ValueError("not a glmlab result (no 'status')")
        result = RunResult.from_dict(values)
        result.step = int(result.step or 0)
        result.error = one_line(result.error)
        return result
    except (OSError, ValueError, TypeError) as exc:
        return RunResult(
            status=RunStatus.FAILED.value,
            step=last_step(run_dir),
            error=one_line(f"unreadable {path}: {type(exc).__name__}: {exc}"),
            run_dir=str(run_dir),
            extra={"unreadable": str(path)},
        )


def write_result(run_dir: str | Path, result: RunResult | dict[str, Any]) -> Path:
    """Write ``result.json`` atomically (the error on one line)."""
    values = result.to_dict() if isinstance(result, RunResult) else dict(result)
    for key in NOT_RESULT_KEYS:
        values.pop(key, None)
    values["error"] = one_line(values.get("error"))
    return write_json_atomic(Path(run_dir) / RESULT, values)
