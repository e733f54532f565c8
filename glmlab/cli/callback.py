"""The Hydra callback that ends a multirun of ``python -m glmlab -m`` (conf/config.yaml
registers it under ``hydra.callbacks``): it writes the sweep's report
(:mod:`glmlab.report`), prints the verdicts and the sweep's last line, and sets the app's
exit status (:func:`glmlab.cli.app.finish_sweep`)."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from glmlab.io import DiskFullError
from glmlab.report.build import write_report
from glmlab.report.console import sweep_summary
from glmlab.report.load import load_sweep

__all__ = ["SweepReportCallback", "report_choices"]

log = logging.getLogger("glmlab")


def report_choices(report: Any) -> dict[str, Any]:
    """The ``report`` config group's baseline and verdict metrics, as load_sweep takes them."""
    return {"baseline": report.get("baseline"), "metric": report.get("metric")}


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
