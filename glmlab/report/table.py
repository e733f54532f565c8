"""A sweep's results as a table: one row per run, the same runs the report and ``compare`` see
(all three read the sweep through :func:`glmlab.report.load.load_sweep`).

:func:`rows_of` turns a loaded sweep into rows with the standard library only (the report
writes them as ``results.csv``); :func:`sweep_rows` reads a sweep directory into rows;
:func:`sweep_frame` wraps them in a pandas DataFrame (pandas is the optional extra
``glmlab[results]``; ``glmlab.results.load_sweep`` is its public name); :func:`render`
writes csv, json, parquet, markdown or a LaTeX (booktabs) table of mean ± 95% CI per
variant and metric: the report's interval and the report's test (:func:`variant_stats`). ``glmlab results SWEEP_DIR`` is the command line. docs/REPORTS.md
describes the columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from glmlab.io import write_text_atomic
from glmlab.report.assess import tests_of
from glmlab.report.family import METHOD_NAME
from glmlab.report.header import settings_text
from glmlab.report.load import Sweep, load_sweep
from glmlab.report.metrics import metric_info
from glmlab.report.stats import ALPHA
from glmlab.report.sweep_verdicts import assessment

if TYPE_CHECKING:
    import pandas

__all__ = [
    "FORMATS",
    "MissingExtraError",
    "VariantStats",
    "csv_text",
    "emit",
    "latex_table",
    "render",
    "rows_of",
    "sweep_frame",
    "sweep_rows",
    "variant_stats",
]

FORMATS = ("csv", "parquet", "json", "markdown", "latex")
# Columns every row has, in this order; variant keys follow ``variant``, metrics follow
# ``step``, provenance (``prov.*``) comes last.
LEADING = ("run", "variant")
MIDDLE = ("seed", "status", "step", "size", "lr", "params", "flops")
# Trailing columns: RunResult fields (glmlab/runs/result.py), in this order.
TRAILING = ("tokens_per_s", "attention", "n_params", "wall_time_s", "error", "run_dir")


def _typed(value: str) -> Any:
    """An override's value as YAML reads it (``true`` -> True, ``0.1`` -> 0.1); other
    values (lists, mappings, interpolations) stay text."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if parsed is None or isinstance(parsed, bool | int | float | str) else value


def _flat(prefix: str, node: Any) -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(f"{prefix}.{k}", v))
        return out
    return {prefix: json.dumps(node) if isinstance(node, list) else node}


def size_columns(run: Any) -> dict[str, Any]:
    """A run's size and training compute: ``size`` (n_layers x dim), ``lr``, ``params``
    (non-embedding) and ``flops`` (glmlab/ladder/compute.py; None for runs recorded
    before result.json had ``compute``)."""
    compute = run.result.compute or {}
    cfg = run.config
    layers, dim = cfg.get("model.n_layers"), cfg.get("model.dim")
    return {
        "size": f"{layers}x{dim}" if layers is not None and dim is not None else None,
        "lr": cfg.get("train.lr"),
        "params": compute.get("non_embedding_params"),
        "flops": compute.get("flops"),
    }


def rows_of(sweep: Sweep) -> list[dict[str, Any]]:
    """One dict per run of a loaded :class:`~glmlab.report.load.Sweep` (see the module
    docstring); every row has the same keys, missing values are None."""
    keys: list[str] = []
    for v in sweep.variants:
        for item in v.label.split(", ") if v.runs and v.label != "(defaults)" else []:
            key = item.split("=", 1)[0]
            if key not in keys:
                keys.append(key)
    metric_names: list[str] = []
    for name in [*sweep.metrics(), *sorted({m for r in sweep.runs for m in r.metrics})]:
        if name not in metric_names:
            metric_names.append(name)
    rows = []
    for v in sweep.variants:
        swept = dict(item.split("=", 1) for item in v.label.split(", ") if "=" in item)
        for r in v.runs:
            res = r.result
            row: dict[str, Any] = {"run": r.dir.name, "variant": v.label}
            row.update({k: _typed(swept[k]) if k in swept else None for k in keys})
            row.update(seed=_typed(str(r.seed)) if r.seed is not None else None)
            row.update(status=r.status, step=res.step)
            row.update(size_columns(r))
            row.update({m: r.metrics.get(m) for m in metric_names})
            row.update({c: getattr(res, c) for c in TRAILING})  # RunResult fields
            row["run_dir"] = str(r.dir)
            row.update(_flat("prov", res.provenance))
            rows.append(row)
    columns = list(dict.fromkeys(c for row in rows for c in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def sweep_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of the runs under ``sweep_dir``, read as the report reads them."""
    return rows_of(load_sweep(sweep_dir))


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise MissingExtraError(
            "glmlab.results.load_sweep needs pandas: pip install 'glmlab[results]' "
            "(or use glmlab.results.sweep_rows, which needs nothing)"
        ) from None
    return pandas


def sweep_frame(sweep_dir: str | Path) -> pandas.DataFrame:
    """The sweep's runs as a pandas DataFrame, one row per run (pandas: ``glmlab[results]``)."""
    return _pandas().DataFrame(sweep_rows(sweep_dir))


# -- statistics (through one adapter, so the report's statistics can change under it) ---


@dataclass(frozen=True)
class VariantStats:
    """One variant's metric for a table, as the report shows it: mean, half-width of its
    95% interval (None: one run), n, and its difference to the baseline with the
    family-adjusted p (None when the report does not test it)."""

    n: int
    mean: float
    ci_half: float | None
    diff: float | None = None
    p: float | None = None
    significant: bool = False


def variant_stats(sweep: Sweep, label: str, metric: str) -> VariantStats | None:
    """The report's numbers for one variant and metric (:func:`glmlab.report.assess.tests_of`
    and the report's family): the same interval and test as report.md."""
    tests = tests_of(sweep, metric)
    iv = tests.intervals.get(label)
    if iv is None:
        return None
    n = tests.counts[label].completed if label in tests.counts else 0
    half = (iv.high - iv.low) / 2.0 if iv.low is not None else None
    d = tests.diffs.get(label)
    p = assessment(sweep).p_adjusted(label, metric)
    if d is None or p is None or label == assessment(sweep).control:
        return VariantStats(n, iv.estimate, half, d.diff if d else None)
    return VariantStats(n, iv.estimate, half, d.diff, p, p < ALPHA)


# -- rendering ---------------------------------------------------------------------------

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX body text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def latex_table(sweep: Sweep, metrics: Sequence[str] | None = None) -> str:
    """A booktabs table: a row per variant, a column per metric, cells mean ± 95% CI
    half-width; a significant difference to the baseline is bold with a dagger."""
    metrics = list(metrics or sweep.metrics())
    if not metrics:
        statuses = ", ".join(sorted({r.status for v in sweep.variants for r in v.runs}))
        raise ValueError(
            f"no metric to tabulate in {sweep.dir}: none of its runs recorded one "
            f"(status: {statuses}); see their result.json and error.log, or glmlab status"
        )
    base = sweep.baseline
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$", None: ""}
    head = [
        latex_escape(metric_info(m).label) + arrows[metric_info(m).higher_is_better]
        for m in metrics
    ]
    what = settings_text(sweep.runs, varying_note=" (the variants)").replace("×", "x")
    lines = [
        r"% glmlab results --format latex; needs \usepackage{booktabs}",
        # What ran (glmlab.report.header), ready to be the caption of the table's float.
        rf"% \caption{{{latex_escape(sweep.name)}: {latex_escape(what)}.}}",
        r"\begin{tabular}{l" + "c" * len(metrics) + "}",
        r"\toprule",
        "Variant & " + " & ".join(head) + r" \\",
        r"\midrule",
    ]
    control = assessment(sweep).control
    for v in sweep.variants:
        role = " (baseline)" if v is base else " (A/A control)" if v.label == control else ""
        cells = [latex_escape(v.label) + role]
        for m in metrics:
            digits = metric_info(m).digits
            st = variant_stats(sweep, v.label, m)
            if st is None:
                cells.append("--")
                continue
            text = f"{st.mean:.{digits}f}"
            if st.ci_half is not None and math.isfinite(st.ci_half):
                text += rf" $\pm$ {st.ci_half:.{digits}f}"
            cells.append(rf"\textbf{{{text}}}$^\dagger$" if st.significant else text)
        lines.append(" & ".join(cells) + r" \\")
    n = sorted({len(v.values(metrics[0])) for v in sweep.variants}) if metrics else []
    tested = ", ".join(latex_escape(metric_info(m).label) for m in metrics if m in sweep.primary)
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        f"% mean $\\pm$ half-width of the report's 95% interval over seeds and items "
        f"(n = {', '.join(map(str, n))});",
        f"% bold with a dagger: differs from the baseline (report.md's test; tested: "
        f"{tested or 'none'}), p < 0.05 after {METHOD_NAME} over the report's family.",
    ]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _markdown(rows: list[dict[str, Any]]) -> str:
    columns = [c for c in (rows[0] if rows else {}) if not c.startswith("prov.")]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def csv_text(sweep: Sweep) -> str:
    """The sweep's rows as CSV (what the report writes as ``results.csv``)."""
    return _csv(rows_of(sweep))


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def render(sweep_dir: str | Path, fmt: str, out: str | Path | None = None) -> str | None:
    """The sweep's table in ``fmt`` (one of :data:`FORMATS`): returned as text, or written
    to ``out`` (and None returned). Parquet needs ``out`` and pandas with pyarrow. (A
    ladder's per-rung table: glmlab/report/ladder_export.py, ``--table ladder``.)"""
    if fmt not in FORMATS:
        raise ValueError(f"unknown results format '{fmt}'; use one of {', '.join(FORMATS)}")
    sweep = load_sweep(sweep_dir)
    return emit(rows_of(sweep), fmt, out, latex=lambda: latex_table(sweep))


def emit(
    rows: list[dict[str, Any]], fmt: str, out: str | Path | None, *, latex: Callable[[], str]
) -> str | None:
    """``rows`` in ``fmt`` (``latex`` makes the LaTeX table): text, or written to ``out``."""
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet writes a binary file: give --out FILE")
        frame = _pandas().DataFrame(rows)
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingExtraError(
                "--format parquet needs pyarrow: pip install 'glmlab[results]'"
            ) from None
        for column in [c for c in frame.columns if frame[c].dtype == "object"]:  # mixed: text
            frame[column] = frame[column].map(lambda x: None if x is None else str(x))
        frame.to_parquet(out, index=False)
        return None
    text = {
        "csv": lambda: _csv(rows),
        "json": lambda: json.dumps(rows, indent=2, default=str) + "\n",
        "markdown": lambda: _markdown(rows),
        "latex": latex,
    }[fmt]()
    if out is None:
        return text
    write_text_atomic(out, text)
    return None
