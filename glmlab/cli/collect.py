"""``glmlab collect``: the report of what has finished, now, and what has not.

The report is the sweep report (:func:`glmlab.report.build_report`) with the runs
that have no result (or an outdated one) described by their state from
:func:`glmlab.cluster.status.sweep_runs`: pending, running, timed out, cancelled, out of
memory..., with the job's log files. Rerun it until every run is in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from glmlab.cluster.slurm import SlurmJob
from glmlab.cluster.status import RunView, sweep_runs
from glmlab.report import Sweep, build_report
from glmlab.runs.layout import FINISHED
from glmlab.runs.result import sweep_exit_status


@dataclass
class Collected:
    """What ``collect`` found: the report (None before any run started), every run's
    view, and the sweep's exit status (0: every run completed or diverged)."""

    report: Path | None
    runs: list[RunView]
    exit_status: int

    @property
    def outstanding(self) -> list[RunView]:
        return [v for v in self.runs if v.state not in FINISHED]


def _amend(views: list[RunView]) -> Callable[[Sweep], None]:
    by_name = {v.name: v for v in views}

    def amend(sweep: Sweep) -> None:
        for run in sweep.runs:
            view = by_name.get(run.dir.name)
            if view is None or view.state == run.status:
                continue
            requeued = f" (requeued {view.requeues}x)" if view.requeues else ""
            run.result = replace(
                run.result,
                status=view.state,
                error=view.detail + requeued,
                job_logs=run.result.job_logs or view.logs,
            )

    return amend


def collect(
    sweep_dir: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    query: Callable[[list[str]], dict[str, SlurmJob]] | None = None,
) -> Collected:
    """Write the sweep's report from what has finished; waits for nothing."""
    views = sweep_runs(sweep_dir, query=query)
    try:
        report = build_report(sweep_dir, baseline=baseline, metric=metric, amend=_amend(views))
    except FileNotFoundError:  # no run has started yet
        report = None
    return Collected(report, views, sweep_exit_status(v.state for v in views))
