"""The Hydra callback that writes a sweep's report when a multirun ends and prints the
sweep's closing lines (conf/config.yaml registers it under ``hydra.callbacks``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from glmlab.io import atomic_write
from glmlab.report.build import write_report
from glmlab.report.load import Sweep, load_sweep
from glmlab.report.markdown import reference_summary, verdict
from glmlab.report.metrics import metric_info
from glmlab.runs.layout import MULTIRUN, REPORT_HTML, REPORT_MD, RESULTS_CSV

__all__ = [
    "SweepReportCallback",
    "remember_multirun",
    "report_choices",
    "report_sweep",
    "sweep_summary",
]

log = logging.getLogger("glmlab")


def report_choices(report: Any) -> dict[str, Any]:
    """The ``report`` config group's baseline and verdict metrics, as load_sweep takes them."""
    return {"baseline": report.get("baseline"), "metric": report.get("metric")}


def sweep_summary(sweep: Sweep, report: Path, launched: str | None = None) -> str:
    """The console's closing lines of a sweep: the verdicts, how its runs were launched
    (``launched``, e.g. ``6 runs, 2 at once, in 312 s``) and where the report is (the
    counts of each outcome follow on the very last line, :func:`glmlab.cli.app.finish_sweep`)."""
    lines = [f"glmlab: sweep {sweep.name}: verdicts"]
    from glmlab.report.ladder import load_ladder
    from glmlab.report.ladder_markdown import ladder_summary

    if (ladder := load_ladder(sweep)) is not None:  # a ladder: its verdicts across scale
        lines += ladder_summary(ladder)
        if launched is not None:
            lines.append(f"  ran {launched} (hydra.launcher.n_jobs sets how many at once)")
        lines.append(f"  report: {report} (and {REPORT_HTML})")
        return "\n".join(lines).replace("**", "")
    if sweep.baseline is not None:
        for v in sweep.variants:
            if v is not sweep.baseline:
                cells = [f"{metric_info(m).label} {verdict(sweep, v, m)}" for m in sweep.primary]
                lines.append(f"  {v.label} vs {sweep.baseline.label}: " + "; ".join(cells))
    lines += [f"  {line.lstrip('- ')}" for line in reference_summary(sweep)]
    if launched is not None:
        lines.append(f"  ran {launched} (hydra.launcher.n_jobs sets how many at once)")
    lines.append(f"  report: {report} (and {REPORT_HTML})")
    return "\n".join(lines).replace("**", "")


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
    except Exception:
        # The runs are on disk whatever happens here; never fail the sweep for its report.
        log.exception(
            "building the sweep report failed; rebuild it with: glmlab report %s", sweep_dir
        )
        return
    print(summary, flush=True)


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
