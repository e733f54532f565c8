"""A sweep's results as a table, one row per run: the public names of
:mod:`glmlab.report.table` (docs/REPORTS.md, "Results as tables").

``load_sweep(path)`` returns a pandas DataFrame (``pip install 'glmlab[results]'``);
``sweep_rows(path)`` the same rows as dicts with the standard library only.
"""

from glmlab.report.table import (
    FORMATS,
    MissingExtraError,
    VariantStats,
    csv_text,
    latex_table,
    render,
    rows_of,
    sweep_rows,
    variant_stats,
)
from glmlab.report.table import sweep_frame as load_sweep

__all__ = [
    "FORMATS",
    "MissingExtraError",
    "VariantStats",
    "csv_text",
    "latex_table",
    "load_sweep",
    "render",
    "rows_of",
    "sweep_rows",
    "variant_stats",
]
