"""One run of a side-by-side sweep, in a worker process that :mod:`glmlab.cluster.pool`
started: run the job as Hydra's launchers do, keep its log lines in its ``app.log`` (the
terminal gets warnings and errors, marked with the run's number), and answer the sweep's
process with the job's return or how the run was interrupted.

Signals: the worker has its own process group, so a terminal's Ctrl-C reaches only the
sweep's process, which passes it on once (a run told twice stops at once, from its last
checkpoint). While training, the trainer defers SIGINT and SIGTERM to the end of the step and
checkpoints it (:class:`glmlab.train.distributed.PreemptionGuard`); SIGTERM then ends the
run as ``SystemExit(143)``, which records it as stopped. When the sweep's process is gone
(killed outright) the worker sends itself SIGTERM: it never trains on as an orphan.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from glmlab.runs.run_log import on_console

__all__ = ["work"]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _watch_sweep(alive: Connection) -> None:
    """Block until the sweep's process closes its end of ``alive`` (it exits, or dies),
    then stop this run as SIGTERM does (after the current step's checkpoint)."""
    try:
        alive.recv()
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


class _RunPrefix(logging.Formatter):
    """The console's format with ``[run N]`` in front: two runs share one terminal."""

    def __init__(self, inner: logging.Formatter | None, num: int) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.prefix = f"[run {num}] "

    def format(self, record: logging.LogRecord) -> str:
        return self.prefix + self.inner.format(record)


def quiet_console(num: int) -> None:
    """Console handlers of the root logger show warnings, errors and news about the run
    as a whole (:func:`glmlab.runs.run_log.on_console`: it was skipped), marked with the
    run's number; the run's ``app.log`` (a file handler) still gets every line."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.addFilter(on_console)
            handler.setFormatter(_RunPrefix(handler.formatter, num))


def _configure_logging(config: Any) -> None:
    from hydra.core.utils import configure_log

    configure_log(config.hydra.job_logging, config.hydra.verbose)
    if not config.hydra.verbose:  # hydra.verbose: the user asked to see it all
        quiet_console(int(config.hydra.job.num))


def _send(results: Connection, message: tuple[str, Any]) -> None:
    """Send ``message`` to the sweep's process; one that cannot be pickled goes as text."""
    try:
        results.send(message)
    except (BrokenPipeError, EOFError, OSError):
        return  # the sweep's process is gone: nobody to tell
    except Exception as exc:  # an unpicklable return value (a failed job's exception)
        kind, payload = message
        if kind == "done":
            status, value, name, where = payload
            text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else ""
            payload = (status, RuntimeError(text or f"unpicklable result: {exc}"), name, where)
        else:
            payload = f"{payload}"[:2000]
        with contextlib.suppress(Exception):
            results.send((kind, payload))


def work(shared: bytes, config: Any, results: Connection, alive: Connection) -> None:
    """A worker process's target: run the job whose composed ``config`` it is given, with
    ``shared`` (cloudpickled Hydra context, task function, Hydra's global state); send
    ``("done", (status, return value, task name, working dir))``, ``("interrupted",
    signum)`` or ``("error", text)``."""
    import cloudpickle
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals

    os.setpgrp()  # a terminal's Ctrl-C goes to the sweep's process, which passes it on once
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    threading.Thread(target=_watch_sweep, args=(alive,), daemon=True).start()
    code = 0
    message: tuple[str, Any]
    try:
        hydra_context, task_function, singleton_state = cloudpickle.loads(shared)
        setup_globals()
        Singleton.set_state(singleton_state)
        HydraConfig.instance().set_config(config)
        _configure_logging(config)
        ret = run_job(
            hydra_context=hydra_context,
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
            configure_logging=False,
        )
        # The job's outcome, without its configs (the sweep's process composed them itself):
        # they may hold classes that only this process's Hydra state knows.
        message = ("done", (ret.status.name, ret._return_value, ret.task_name, ret.working_dir))
    except KeyboardInterrupt:
        message, code = ("interrupted", signal.SIGINT), 128 + signal.SIGINT
    except SystemExit as exc:  # the trainer's exit after a Ctrl-C's checkpoint, or SIGTERM
        code = exc.code if isinstance(exc.code, int) else 1
        signum = code - 128 if code - 128 in (signal.SIGINT, signal.SIGTERM) else None
        message = ("interrupted", signum) if signum else ("error", f"exited: {exc.code}")
    except BaseException:
        message, code = ("error", traceback.format_exc()), 1
        sys.stderr.write(message[1])
    _send(results, message)
    logging.shutdown()
    sys.stdout.flush()
    sys.exit(code)
