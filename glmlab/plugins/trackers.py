"""Built-in experiment trackers: ``tensorboard``, ``wandb`` and ``mlflow``.

Each library is an optional extra (``pip install "glmlab[tensorboard]"``, ``[wandb]``,
``[mlflow]``) imported when the tracker is built; without it the factory raises
:class:`~glmlab.plugin.base.TrackerUnavailable`, which stops the run before any data is
prepared. docs/PLUGINS.md describes the options.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmlab import hookimpl
from glmlab.plugin.base import TrackerRun, TrackerUnavailable


def _require(module: str, extra: str, tracker: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TrackerUnavailable(
            f"tracker '{tracker}' needs the {module.split('.')[0]} package, which is not "
            f"importable here ({exc}). Install it with: pip install 'glmlab[{extra}]', or "
            f"remove '{tracker}' from the run's tracker list."
        ) from None


def _scalar(value: Any) -> bool | int | float | str:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _check_writable(folder: Path, tracker: str, key: str) -> None:
    """Make ``folder`` and write a probe file in it: a folder a tracker cannot write is one
    clear error when its run starts, not a traceback from the tracker's writer thread."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise TrackerUnavailable(
            f"{tracker}: cannot write to {folder} ({type(exc).__name__}: {exc.strerror or exc}); "
            f"make it writable or set {key} to a writable folder"
        ) from None


class TensorBoardTracker:
    """Scalars to ``<run dir>/<log_dir>`` (``tensorboard --logdir sweeps/<name>`` overlays
    the runs of a sweep); the config as text when the run starts and as hparams, with
    the final metrics, when it ends. A resumed run writes to the same directory, and
    TensorBoard drops what an earlier attempt logged after the resumed step (purge_step)."""

    def __init__(self, log_dir: str = "tensorboard", flush_secs: int = 30) -> None:
        self._tb = _require("torch.utils.tensorboard", "tensorboard", "tensorboard")
        self.log_dir, self.flush_secs = log_dir, flush_secs
        self.writer: Any = None
        self.run: TrackerRun | None = None
        self.step = 0

    def start(self, run: TrackerRun) -> str:
        self.run, self.step = run, run.start_step
        path = run.run_dir / (run.resume_id or self.log_dir)
        _check_writable(path, "tensorboard", "tracker.tensorboard.log_dir")
        purge = run.start_step + 1 if run.resume_id and run.start_step else None
        self.writer = self._tb.SummaryWriter(
            str(path), purge_step=purge, flush_secs=self.flush_secs
        )
        if not run.resume_id:
            text = "\n".join(f"    {k}: {v}" for k, v in run.flat_config().items())
            self.writer.add_text("config", text, 0)
        return str(path.relative_to(run.run_dir))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        self.step = max(self.step, step)

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        if status != "stopped" and self.run is not None:
            from torch.utils.tensorboard.summary import hparams

            params = {k: _scalar(v) for k, v in self.run.flat_config().items() if v is not None}
            params["status"] = status
            final = {f"final/{k}": v for k, v in summary.items()}
            for tag, value in final.items():
                self.writer.add_scalar(tag, value, self.step)
            for s in hparams(params, final):
                self.writer.file_writer.add_summary(s)
        self.writer.close()


class MLflowTracker:
    """Experiment = the sweep, one MLflow run per run directory (named like it), params =
    the flattened config, metrics at every logged step, the final metrics as ``final/*``.
    The store is ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file
    ``mlflow.db`` in the sweep directory (``mlflow ui --backend-store-uri sqlite:///...``)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self._mlflow = _require("mlflow", "mlflow", "mlflow")
        _require("sqlalchemy", "mlflow", "mlflow")  # the SQLite store
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.client: Any = None
        self.run_id = ""
        self.step = 0

    def _uri(self, run: TrackerRun) -> str:
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        return uri or f"sqlite:///{(run.sweep_dir / 'mlflow.db').resolve()}"

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except self._mlflow.exceptions.MlflowException:  # another run of the sweep won
            return self.client.get_experiment_by_name(name).experiment_id

    def start(self, run: TrackerRun) -> str:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self._uri(run))
        self.step = run.start_step
        if run.resume_id:
            self.run_id = run.resume_id
            self.client.update_run(self.run_id, status="RUNNING")
            return self.run_id
        tags = {"glmlab.run_dir": str(run.run_dir), "glmlab.variant": run.variant}
        created = self.client.create_run(
            self._experiment_id(self.experiment or run.experiment), run_name=run.name, tags=tags
        )
        self.run_id = created.info.run_id
        Param = self._mlflow.entities.Param
        params = [Param(k, str(v)[:6000]) for k, v in run.flat_config().items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        return self.run_id

    def _metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        Metric = self._mlflow.entities.Metric
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._metrics(step, metrics)
        self.step = max(self.step, step)

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        if summary:
            self._metrics(self.step, {f"final/{k}": v for k, v in summary.items()})
        state = {"completed": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=state)


class WandbTracker:
    """Project = the sweep (``project``), group = the sweep, job type = the variant, name =
    the run directory; the config, the metrics at every logged step, the final metrics as
    the summary. Files go to ``<run dir>/wandb``; ``WANDB_MODE=offline`` needs no account
    (``wandb sync <run dir>/wandb/offline-run-*`` uploads later)."""

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        mode: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        self._wandb = _require("wandb", "wandb", "wandb")
        self.project, self.entity, self.group = project, entity, group
        self.mode, self.tags = mode, list(tags or [])
        self.wb_run: Any = None

    def start(self, run: TrackerRun) -> str:
        wandb = self._wandb
        run_id = run.resume_id or uuid.uuid4().hex[:16]  # W&B ids: [a-z0-9]
        _check_writable(run.run_dir / "wandb", "wandb", "the run directory's permissions")
        self.wb_run = wandb.init(
            project=self.project or run.experiment,
            entity=self.entity,
            group=self.group or run.experiment,
            job_type=run.variant or "run",
            name=run.name,
            dir=str(run.run_dir),
            config=dict(run.config),
            tags=self.tags or None,
            id=run_id,
            resume="allow",
            mode=self.mode,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )
        return str(self.wb_run.id)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.wb_run.log(dict(metrics), step=step)

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        self.wb_run.summary.update({**summary, "status": status})
        self.wb_run.finish(exit_code=0 if status in ("completed", "stopped") else 1)
        # Stop W&B's service process: its run file is then complete on disk, before a
        # requeued job (or anything else) reads or continues it.
        self._wandb.teardown()


@hookimpl
def glmlab_trackers() -> dict[str, Any]:
    return {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}


def installed(name: str) -> bool:
    """Whether the library of built-in tracker ``name`` imports here (for tests' skips)."""
    module = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}[name]
    try:
        __import__(module)
    except ImportError:
        return False
    return True


__all__ = ["MLflowTracker", "TensorBoardTracker", "WandbTracker", "installed"]
