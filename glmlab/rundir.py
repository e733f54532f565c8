"""The run-directory format: the one module that names a run directory's files, the
statuses a run can end in, and how they are read, written, locked and identified.
Everything that writes or reads a run directory (the run, the trainer, reports, compare,
status/collect tools) takes its names and rules from here.

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

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from glmlab.io import iter_jsonl, read_json, write_json_atomic, write_jsonl_atomic

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
    "HYDRA_DIR",
    "HYDRA_OVERRIDES",
    "IDENTITY",
    "KEEP_CHECKPOINT",
    "LOCK",
    "LOSS_CURVES",
    "METRICS",
    "MULTIRUN",
    "NOT_RESULT_KEYS",
    "ON_CHANGE",
    "REPORT_HTML",
    "REPORT_MD",
    "RESULT",
    "RESULTS_CSV",
    "STALE_DIR",
    "TRACKERS",
    "UNFINISHED",
    "WEIGHTS",
    "ConfigChanged",
    "RunLock",
    "RunLocked",
    "RunResult",
    "RunStatus",
    "config_identity",
    "identity_changes",
    "iter_run_dirs",
    "last_step",
    "move_aside",
    "one_line",
    "outcome_counts",
    "outcome_line",
    "plugin_versions",
    "read_identity",
    "read_overrides",
    "read_result",
    "repair_metrics",
    "run_files",
    "sweep_exit_status",
    "sweep_statuses",
    "write_identity",
    "write_result",
]

log = logging.getLogger("glmlab")

CONFIG = "config.yaml"
IDENTITY = "identity.json"
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


def run_files(run_dir: str | Path) -> dict[str, Path]:
    """The paths of a run directory's files, by their constant's name (lower case)."""
    root = Path(run_dir)
    names = {
        "config": CONFIG,
        "identity": IDENTITY,
        "metrics": METRICS,
        "checkpoint": CHECKPOINT,
        "weights": WEIGHTS,
        "result": RESULT,
        "eval_items": EVAL_ITEMS,
        "error_log": ERROR_LOG,
        "app_log": APP_LOG,
        "trackers": TRACKERS,
    }
    return {key: root / name for key, name in names.items()}


def one_line(text: str | None, limit: int = 500) -> str | None:
    """``text`` on one line (whitespace runs collapsed), cut at ``limit`` characters: how
    an error goes into result.json and a report's table (error.log keeps the full text)."""
    if text is None:
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- outcomes ---------------------------------------------------------------------------


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


def sweep_statuses(sweep_dir: str | Path) -> list[str]:
    """The status of every run of a sweep directory, read as the report reads them (an
    unreadable result.json is ``failed``, a run without one ``unfinished``)."""
    statuses = []
    for run_dir in iter_run_dirs(sweep_dir):
        result = read_result(run_dir)
        statuses.append(UNFINISHED if result is None else result.status)
    return statuses


# -- result.json ------------------------------------------------------------------------


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


def read_overrides(run_dir: str | Path) -> list[str]:
    """The run's command-line overrides as Hydra saved them (``.hydra/overrides.yaml``);
    [] when the file is absent or unreadable."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / HYDRA_OVERRIDES
    try:
        return [str(o) for o in OmegaConf.load(path)]  # type: ignore[union-attr]
    except Exception:  # absent or damaged: the run is listed without its overrides
        return []


# -- metrics.jsonl ----------------------------------------------------------------------


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


# -- config identity --------------------------------------------------------------------

# Keys that never change a run's results: left out of its identity.
IGNORED_KEYS: tuple[str, ...] = (
    "name",
    "report",
    "run",
    "train.progress",
    "train.threads",
    "train.stop_after",
    "data.workers",
    "tracker",  # where results are sent, not what they are
)
PLUGIN_GROUPS = ("positional", "norm_layout", "mask_builder", "attention")
# What a rerun does when the run directory holds a run of another config (`run.on_change`).
ON_CHANGE = ("refuse", "restart", "resume")


class ConfigChanged(ValueError):
    """A run directory holds a run made with another config; the message says what differs."""


def flatten(node: Any, prefix: str = "", *, encode: bool = False) -> dict[str, Any]:
    """A nested config as ``{"train.lr": 0.003, ...}`` (an empty mapping is a value);
    ``encode``: lists and mappings as JSON text (for tables and trackers)."""
    if isinstance(node, Mapping) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}.", encode=encode))
        return out
    if encode and isinstance(node, list | Mapping):
        return {prefix[:-1]: json.dumps(node)}
    return {prefix[:-1]: node}


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def config_identity(config: dict[str, Any], plugins: dict[str, str]) -> dict[str, Any]:
    """The identity of a run: its resolved config's values that can change results
    (flattened to dotted keys) and the ``{distribution: version}`` of the plugins it uses."""
    values = {k: v for k, v in sorted(flatten(config).items()) if not _ignored(k)}
    blob = json.dumps([values, plugins], sort_keys=True, default=str)
    return {
        "fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:16],
        "config": values,
        "plugins": dict(sorted(plugins.items())),
    }


def plugin_versions(config: dict[str, Any]) -> dict[str, str]:
    """``{distribution: version}`` of glmlab and of every plugin ``config`` selects."""
    from importlib import metadata

    from glmlab.registry import PluginError, get_registry

    registry = get_registry()
    wanted = [(kind, (config.get(kind) or {}).get("name")) for kind in PLUGIN_GROUPS]
    samplers = ((config.get("objective") or {}).get("samplers") or {}).keys()
    wanted += [("span_sampler", name) for name in samplers]
    versions: dict[str, str] = {}
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["glmlab"] = metadata.version("glmlab")
    for kind, name in wanted:
        with contextlib.suppress(PluginError, KeyError):
            entry = registry.get(kind, str(name))
            versions[entry.distribution] = entry.version
    return versions


def read_identity(run_dir: str | Path) -> dict[str, Any] | None:
    """The identity the run directory was made with: identity.json, else (a directory
    from before identities) one derived from config.yaml without plugin versions; None
    for a fresh directory."""
    run_dir = Path(run_dir)
    with contextlib.suppress(OSError, ValueError):
        found = read_json(run_dir / IDENTITY)
        if isinstance(found, dict) and isinstance(found.get("config"), dict):
            return found
    if (run_dir / CONFIG).exists():
        from omegaconf import OmegaConf

        try:
            config = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG))
        except Exception as exc:  # a damaged config.yaml: nothing to compare with
            log.warning("unreadable %s (%s): its run's config is unknown", run_dir / CONFIG, exc)
            return {"config": {}, "plugins": None, "unreadable": True}
        identity = config_identity(config, {})  # type: ignore[arg-type]
        identity["plugins"] = None  # unknown: not compared
        return identity
    return None


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two identities, one ``key: old -> new`` line per value."""
    if old.get("unreadable"):
        return [f"{CONFIG}: unreadable, so the run's config is unknown"]
    changes = []
    for group in ("config", "plugins"):
        a, b = old.get(group), new.get(group)
        if a is None or b is None:
            continue
        for key in sorted(set(a) | set(b)):
            # Unset is null: a key the schema gained later, with a null default, is no change.
            if not _ignored(key) and a.get(key) != b.get(key):
                prefix = "plugin " if group == "plugins" else ""
                changes.append(
                    f"{prefix}{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}"
                )
    return changes


def write_identity(
    run_dir: str | Path, identity: dict[str, Any], *, accepted: list[str] | None = None
) -> Path:
    """Write identity.json; ``accepted`` (a resume across a config change) is appended to
    the record's history with the step it happened at."""
    run_dir = Path(run_dir)
    history: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        history = list(read_json(run_dir / IDENTITY).get("history", []))
    if accepted:
        history.append({"at_step": last_step(run_dir), "time": time.time(), "changes": accepted})
    return write_json_atomic(run_dir / IDENTITY, {**identity, "history": history})


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


# -- the lock ---------------------------------------------------------------------------


class RunLocked(RuntimeError):
    """Another process is working in the run directory (``RunLock(wait=False)``)."""


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock`` for the life of the ``with`` block: two
    processes never train one run directory at once. With ``wait`` (the default) a second
    process logs who holds it and waits; otherwise it raises :class:`RunLocked`. The lock
    goes with its process, however that process ends; the file stays (deleting it races)."""

    def __init__(self, run_dir: str | Path, *, wait: bool = True) -> None:
        self.path = Path(run_dir) / LOCK
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _not_writable(self.path.parent, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder() or "another process"
            if not self.wait:
                os.close(fd)
                raise RunLocked(
                    f"run directory {self.path.parent} is in use by {holder}; "
                    "wait for it to finish, or give this run another directory"
                ) from None
            log.warning(
                "run directory %s is in use by %s: waiting for it to finish",
                self.path.parent,
                holder,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return self

    def _holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text(encoding="utf-8").strip()
        return ""

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _not_writable(folder: Path, exc: OSError) -> OSError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionError(
            exc.errno,
            f"run directory {folder} is not writable ({exc.strerror}); "
            "give the run a writable directory (hydra.run.dir=... or hydra.sweep.dir=...)",
        )
    return exc


def iter_run_dirs(sweep_dir: str | Path) -> Iterator[Path]:
    """The run directories of a sweep: its subfolders holding a result or a config."""
    for p in sorted(Path(sweep_dir).iterdir()):
        if p.is_dir() and ((p / RESULT).exists() or (p / CONFIG).exists()):
            yield p
