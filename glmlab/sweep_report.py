"""Compatibility alias: conf/config.yaml names the callback
``glmlab.sweep_report.SweepReportCallback``; the reports live in :mod:`glmlab.report`."""

from glmlab.report.callback import SweepReportCallback

__all__ = ["SweepReportCallback"]
