"""Sweep reports, comparisons and results tables (docs/REPORTS.md).

One module per job, on top of :mod:`glmlab.runs.layout` (the run-directory format):

- :mod:`~glmlab.report.load`: a sweep directory's runs, variants and baseline (typed
  :class:`~glmlab.runs.result.RunResult` records); the one loading path of everything below
- :mod:`~glmlab.report.metrics`: the metric registry (labels, direction, digits, task)
- :mod:`~glmlab.report.stats`: the statistical methods (paired hierarchical bootstrap,
  Holm, Welch's t-test and t intervals from scipy.stats)
- :mod:`~glmlab.report.assess`: which method each metric of a sweep gets, reference levels
- :mod:`~glmlab.report.markdown`, :mod:`~glmlab.report.plots`, :mod:`~glmlab.report.html`:
  the report's text, loss curves and self-contained page
- :mod:`~glmlab.report.build`: writes a sweep's report files
- :mod:`~glmlab.report.table`: one row per run (``glmlab results``; ``glmlab.results``)
- :mod:`~glmlab.report.compare`: sweeps side by side (``glmlab compare``)
- :mod:`~glmlab.report.console`: a sweep's closing lines on the console (the verdicts),
  which the app's end-of-multirun callback (:mod:`glmlab.cli.callback`) prints
"""

from glmlab.report.build import build_report, write_report
from glmlab.report.compare import compare_sweeps, default_compare_dir
from glmlab.report.load import Run, Sweep, Variant, load_sweep
from glmlab.report.table import render as render_table
from glmlab.report.table import rows_of, sweep_frame, sweep_rows

__all__ = [
    "Run",
    "Sweep",
    "Variant",
    "build_report",
    "compare_sweeps",
    "default_compare_dir",
    "load_sweep",
    "render_table",
    "rows_of",
    "sweep_frame",
    "sweep_rows",
    "write_report",
]
