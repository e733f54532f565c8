"""Experiment trackers (TensorBoard, Weights & Biases, MLflow, ...): the ``tracker`` plugin kind.

A run selects any number of trackers by registry name (``tracker=[tensorboard,mlflow]``:
each ``conf/tracker/<name>.yaml`` puts its options under ``tracker.<name>``; default: none).
:class:`Trackers` builds them when the run starts, before any data is prepared, so a
tracker whose library is missing is one clear error then, never a crash at step 5,000.
The trainer calls :meth:`Trackers.start` once it knows the step it starts from,
:meth:`Trackers.log_row` for every row it writes to ``metrics.jsonl``, and the run calls
:meth:`Trackers.finish` with its result. Each tracker's run id is kept in the run directory
(``trackers.json``), so a resumed or requeued run continues the same tracker run. A tracker
that fails while logging is reported once and switched off; the run goes on.

A tracker plugin's factory (hook ``glmlab_trackers``) is called with the options of its
config group and returns a :class:`~glmlab.plugin.base.TrackerBase`; it raises
:class:`~glmlab.plugin.base.TrackerUnavailable` when its library is not installed (the
tracker contract lives with the other kinds' in :mod:`glmlab.plugin.base`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glmlab.config.spec import tracker_choices as config_tracker_choices
from glmlab.io import read_json, write_json_atomic
from glmlab.plugin.base import TrackerBase, TrackerRun
from glmlab.plugin.registry import get_registry
from glmlab.runs.layout import TRACKERS, RunStatus
from glmlab.runs.result import RunResult

log = logging.getLogger("glmlab")

__all__ = [
    "Trackers",
    "row_metrics",
    "tracker_choices",
]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def row_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` row as tracker metrics: ``loss`` -> ``train/loss``, ``val_loss`` ->
    ``val/loss``, ``eval: {m: v}`` -> ``eval/m``; non-numeric and non-finite values left out."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key == "step":
            continue
        if key == "eval" and isinstance(value, Mapping):
            out.update({f"eval/{k}": v for k, v in value.items() if _number(v) is not None})
        elif key == "val_loss":
            out["val/loss"] = value
        elif _number(value) is not None:
            out[f"train/{key}"] = value
    return {k: float(v) for k, v in out.items() if _number(v) is not None}


def tracker_choices(cfg: DictConfig | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: options}`` of the trackers a config selects (its ``tracker`` node, see
    :func:`glmlab.config.spec.tracker_choices`)."""
    node = cfg.get("tracker") if isinstance(cfg, Mapping | DictConfig) else None
    return config_tracker_choices(node)


@dataclass
class Trackers:
    """The trackers of one run (possibly none). Only the main process (``enabled``) opens
    tracker runs and logs."""

    trackers: dict[str, TrackerBase] = field(default_factory=dict)
    run: TrackerRun | None = None
    enabled: bool = True
    _started: list[str] = field(default_factory=list)

    @classmethod
    def from_config(
        cls, cfg: DictConfig, run_dir: str | Path, variant: Sequence[str], *, enabled: bool = True
    ) -> Trackers:
        """Build the trackers ``cfg`` selects; :class:`TrackerUnavailable` or the registry's
        error (naming the available trackers) when one cannot be built."""
        choices = tracker_choices(cfg)
        if not choices:
            return cls(enabled=enabled)
        registry = get_registry()
        built = {name: registry.create("tracker", name, **opts) for name, opts in choices.items()}
        run_dir = Path(run_dir)
        config = OmegaConf.to_container(cfg, resolve=True)
        run = TrackerRun(
            run_dir=run_dir,
            experiment=run_dir.resolve().parent.name,
            name=run_dir.name,
            variant=",".join(variant),
            config=config if isinstance(config, dict) else {},
        )
        return cls(built, run, enabled)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _ids_path(self) -> Path:
        assert self.run is not None
        return self.run.run_dir / TRACKERS

    def start(self, step: int) -> None:
        """Open each tracker's run (continuing the one whose id ``trackers.json`` holds)
        and record the ids."""
        if not self.trackers or not self.enabled or self.run is None:
            return
        path = self._ids_path()
        ids: dict[str, str] = read_json(path) if path.exists() else {}
        for name, tracker in self.trackers.items():
            run = TrackerRun(
                **{**self.run.__dict__, "resume_id": ids.get(name), "start_step": step}
            )
            ids[name] = str(tracker.start(run))
            self._started.append(name)
            write_json_atomic(path, ids)  # at once: a crash in the next tracker keeps this id
        log.info("trackers: %s", ", ".join(f"{n} (run {ids[n]})" for n in self._started))

    def _each(self, what: str, *args: Any) -> None:
        for name in list(self._started):
            try:
                getattr(self.trackers[name], what)(*args)
            except Exception as exc:
                # A tracker's outage must not end a long run: report it once, stop using it.
                log.error(
                    "tracker %s failed in %s: %s: %s; it is switched off for this run",
                    name,
                    what,
                    type(exc).__name__,
                    exc,
                )
                self._started.remove(name)

    def log_row(self, row: Mapping[str, Any]) -> None:
        """Send one ``metrics.jsonl`` row (see :func:`row_metrics`)."""
        metrics = row_metrics(row)
        if metrics and self._started:
            self._each("log", int(row["step"]), metrics)

    def finish(self, result: RunResult) -> None:
        """Close every tracker run with the run's ``result`` (status, final metrics). A run
        interrupted without an error (preemption, SIGTERM) closes as ``stopped``."""
        if not self._started:
            return
        status = result.status
        if status == RunStatus.FAILED and not result.error:
            status = RunStatus.STOPPED.value
        summary: dict[str, float] = {}
        for key, value in (
            {}
            if status == RunStatus.STOPPED
            else {  # a stopped run has no final values
                "final_val_loss": result.final_val_loss,
                **(result.eval or {}),
            }.items()
        ):
            if _number(value) is not None:
                summary[key] = float(value)
        self._each("finish", status, summary)
        self._started.clear()
