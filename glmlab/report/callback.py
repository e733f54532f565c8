"""The Hydra callback that writes a sweep's report when a multirun ends and prints the
sweep's closing lines (conf/config.yaml registers it under ``hydra.callbacks``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from glmlab.report.build import write_report
from glmlab.report.claims import claim_summary, judge_claims
from glmlab.report.load import Sweep, load_sweep
from glmlab.report.markdown import reference_summary, verdict
from glmlab.report.metrics import metric_info
from glmlab.runs.layout import REPORT_HTML

__all__ = ["SweepReportCallback", "report_choices", "sweep_summary"]

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
    lines += [f"  {claim_summary(v)}" for v in judge_claims(sweep, sweep.claims)]
    if launched is not None:
        lines.append(f"  ran {launched} (hydra.launcher.n_jobs sets how many at once)")
    lines.append(f"  report: {report} (and {REPORT_HTML})")
    return "\n".join(lines).replace("**", "")


class SweepReportCallback(Callback):
    """Hydra callback: build the sweep report when a multirun ends, then print the
    verdicts and the sweep's last line (its outcome counts)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from glmlab.cluster.launcher import submits_only

        if submits_only(config):  # the jobs were only submitted: `glmlab collect` reports
            return
        try:
            self._write_report(config)
        finally:
            from glmlab.cli.app import finish_sweep  # the last line and the sweep's exit status

            finish_sweep(config.hydra.sweep.dir)

    def _write_report(self, config: DictConfig) -> None:
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
