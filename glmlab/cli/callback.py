"""The Hydra callback that ends a multirun of ``python -m glmlab -m`` (conf/config.yaml
registers it under ``hydra.callbacks``): it writes the sweep's report
(:mod:`glmlab.report`), prints the verdicts and the sweep's last line, and sets the app's
exit status (:func:`glmlab.cli.app.finish_sweep`). A sweep whose runs could not all be
recorded in their directories (a refused config change) keeps the previous report and
``multirun.yaml``; an interrupted sweep ends here too (:func:`end_interrupted`)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from glmlab.cluster.jobs import SweepInterrupted
from glmlab.io import DiskFullError, atomic_write
from glmlab.report.build import write_report
from glmlab.report.console import sweep_summary
from glmlab.report.load import load_sweep
from glmlab.runs.layout import MULTIRUN, REPORT_MD, RESULTS_CSV

__all__ = [
    "SweepReportCallback",
    "end_interrupted",
    "remember_multirun",
    "report_choices",
    "report_sweep",
]

log = logging.getLogger("glmlab")


def report_choices(report: Any) -> dict[str, Any]:
    """The ``report`` config group's baseline and verdict metrics, as load_sweep takes them."""
    return {"baseline": report.get("baseline"), "metric": report.get("metric")}


# multirun.yaml as it was when each sweep of this process started (None: absent), so that
# a sweep that could not record its runs puts it back: by sweep directory.
_multirun_before: dict[str, bytes | None] = {}


def remember_multirun(sweep_dir: str | Path) -> None:
    """Keep the sweep's ``multirun.yaml`` as it is before the sweeper rewrites it."""
    path = Path(sweep_dir) / MULTIRUN
    _multirun_before[os.path.abspath(sweep_dir)] = path.read_bytes() if path.is_file() else None


def _keep_previous(sweep_dir: str | Path, refused: int) -> None:
    """A sweep whose runs could not all be recorded in their directories leaves the report,
    results.csv and multirun.yaml as they were (they would show another config's runs as
    this sweep's), and says so."""
    key = os.path.abspath(sweep_dir)
    path = Path(sweep_dir) / MULTIRUN
    if key in _multirun_before:
        before = _multirun_before[key]
        if before is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write(path, lambda f: f.write(before))
    runs = "1 run" if refused == 1 else f"{refused} runs"
    print(
        f"glmlab: sweep {sweep_dir}: {runs} of this sweep could not be recorded in their "
        f"directories (listed below): {REPORT_MD}, {RESULTS_CSV} and {MULTIRUN} are left as "
        f"they were; `glmlab report {sweep_dir}` rebuilds the report from the runs on disk",
        flush=True,
    )


def report_sweep(config: DictConfig) -> None:
    """Write the report of a sweep that ended (or was interrupted) and print its verdicts;
    when some of its runs could not be recorded in their directories (a refused config
    change, an unwritable directory), keep the previous report instead."""
    from glmlab.cli.app import not_recorded  # the runs the app and its workers could not record

    refused = not_recorded()
    if refused:
        _keep_previous(config.hydra.sweep.dir, len(refused))
    else:
        _write_report(config)


def _write_report(config: DictConfig) -> None:
    from glmlab.cluster.local import launch_of

    sweep_dir = config.hydra.sweep.dir
    launch = launch_of(sweep_dir)
    try:
        sweep = load_sweep(sweep_dir, **report_choices(config.get("report", {})))
        summary = sweep_summary(
            sweep, write_report(sweep), launch.phrase() if launch is not None else None
        )
    except FileNotFoundError as exc:
        log.error("no sweep report: %s", exc)
        return
    except DiskFullError as exc:  # one line naming the file, no traceback
        log.error("no sweep report: %s; rebuild it with: glmlab report %s", exc, sweep_dir)
        return
    except Exception:
        # The runs are on disk whatever happens here; never fail the sweep for its report.
        log.exception(
            "building the sweep report failed; rebuild it with: glmlab report %s", sweep_dir
        )
        return
    print(summary, flush=True)


def end_interrupted(exc: KeyboardInterrupt) -> int:
    """After Ctrl-C (or SIGTERM to a sweep): a sweep writes the report of what finished
    and says, per run, what a rerun does; returns the exit status (130 after Ctrl-C)."""
    from glmlab.cli.app import finish_sweep, rerun_action

    if not isinstance(exc, SweepInterrupted):
        print("glmlab: interrupted (Ctrl-C); rerun the same command to resume", file=sys.stderr)
        return 130
    sweep_dir = str(exc.config.hydra.sweep.dir)
    try:
        report_sweep(exc.config)
    except KeyboardInterrupt:
        print(f"glmlab: no report written; glmlab report {sweep_dir} writes it", file=sys.stderr)
    print(f"glmlab: sweep {sweep_dir} {exc}; rerunning the same command does, per run:")
    for run in exc.runs:
        print(f"  [run {run.num}] {run.run_dir.name}: {rerun_action(run.run_dir)}")
    finish_sweep(sweep_dir, [run.run_dir for run in exc.runs])
    return exc.exit_status


class SweepReportCallback(Callback):
    """Hydra callback: build the sweep report when a multirun ends, then print the
    verdicts and the sweep's last line (its outcome counts). A sweep whose runs could not
    all be recorded in their directories keeps the previous report and multirun.yaml."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir = config.hydra.sweep.dir
        except Exception:  # a bad name: refused in one line when the sweep starts
            return
        remember_multirun(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from glmlab.cluster.launcher import submits_only

        if submits_only(config):  # the jobs were only submitted: `glmlab collect` reports
            return
        try:
            report_sweep(config)
        finally:
            from glmlab.cli.app import finish_sweep  # the last line and the sweep's exit status

            finish_sweep(config.hydra.sweep.dir)
