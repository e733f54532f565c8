"""What a run writes about itself besides its results: its log (``app.log``) and Hydra's
record of the composed config (``.hydra/``).

Both are written by glmlab once the run directory is claimed, not by Hydra when the job
starts (``hydra.output_subdir: null`` and the ``glmlab`` job-logging config, which logs to
the console only): a run refused before that (a changed config, a resume whose weights no
longer fit) leaves the directory exactly as it was, and a read-only directory is one clear
failure instead of Hydra's tracebacks."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from glmlab.io import disk_full_error, write_text_atomic
from glmlab.runs.layout import APP_LOG, HYDRA_DIR

__all__ = ["LOG_FORMAT", "ON_CONSOLE", "RunLog", "on_console", "write_hydra_records"]

log = logging.getLogger("glmlab")

# Hydra's own job-log format (kept, so app.log reads as before).
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
# ``log.info(..., extra=ON_CONSOLE)``: news about the run as a whole (it was skipped) that a
# side-by-side sweep's terminal shows beside warnings and errors (glmlab/cluster/worker.py);
# every other INFO line stays in the run's app.log there.
ON_CONSOLE: dict[str, bool] = {"console": True}


def on_console(record: logging.LogRecord) -> bool:
    """Whether a side-by-side sweep's terminal shows ``record``: warnings, errors and
    lines logged with :data:`ON_CONSOLE`."""
    return record.levelno >= logging.WARNING or bool(getattr(record, "console", False))


class _LogFile(logging.FileHandler):
    """``app.log``: a write that fails (a full disk) is one warning on stderr naming the file
    and the free space, and the log stops there; the run goes on, and closing never raises
    (no logging tracebacks)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            self._stop(exc)
        else:  # a bad format string: logging's own report
            super().handleError(record)

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self._stop(exc)

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # the last buffered lines could not be written
            self._stop(exc)

    def _stop(self, exc: OSError) -> None:
        if self.failed:
            return
        self.failed = True
        then = "the run's log stops here; the run goes on"
        error = disk_full_error(self.baseFilename, exc, then) or f"{exc}; {then}"
        print(f"glmlab: warning: {error}", file=sys.stderr, flush=True)


class RunLog:
    """The run's ``app.log``: what is logged before the directory is claimed is held in
    memory and written there by :meth:`claim`; a refused run writes nothing."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._held = logging.handlers.MemoryHandler(
            capacity=1 << 30, flushLevel=logging.CRITICAL + 1
        )
        self._held.setFormatter(logging.Formatter(LOG_FORMAT))
        self._file: logging.Handler | None = None
        if enabled:
            logging.getLogger().addHandler(self._held)

    def claim(self, run_dir: str | Path) -> None:
        """Append what was held, and everything logged from now on, to ``run_dir/app.log``
        (a directory that cannot take it is logged as a warning, never raised)."""
        if not self.enabled or self._file is not None:
            return
        path = Path(run_dir) / APP_LOG
        try:
            self._file = _LogFile(path)
        except OSError as exc:
            full = disk_full_error(path, exc, "the run goes on without its log")
            log.warning("%s", full or f"cannot write the run's log {path}: {exc}")
            return
        self._file.setFormatter(logging.Formatter(LOG_FORMAT))
        self._held.setTarget(self._file)
        self._held.flush()
        root = logging.getLogger()
        root.removeHandler(self._held)
        root.addHandler(self._file)

    def close(self) -> None:
        """Detach from logging (the next run of this process has its own log)."""
        root = logging.getLogger()
        root.removeHandler(self._held)
        self._held.setTarget(None)  # type: ignore[arg-type]
        self._held.close()
        if self._file is not None:
            root.removeHandler(self._file)
            self._file.close()
            self._file = None


def write_hydra_records(run_dir: str | Path, cfg: DictConfig) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` as Hydra writes them
    (sweeps find their existing runs by ``overrides.yaml``); nothing outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    folder = Path(run_dir) / HYDRA_DIR
    folder.mkdir(exist_ok=True)
    write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text_atomic(folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})))
    write_text_atomic(folder / "overrides.yaml", OmegaConf.to_yaml(list(hc.overrides.task)))
