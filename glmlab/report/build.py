"""Writing a sweep's report files: ``report.md``, ``report.html`` (self-contained: the loss
curves embedded), ``loss_curves.png`` and ``results.csv``, from the run directories alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from glmlab.io import write_text_atomic
from glmlab.report.header import shared_settings
from glmlab.report.html import markdown_to_html
from glmlab.report.load import Sweep, load_sweep
from glmlab.report.markdown import render_markdown
from glmlab.report.metrics import METRICS
from glmlab.report.plots import plot_curves
from glmlab.report.table import csv_text
from glmlab.runs.layout import LOSS_CURVES, REPORT_HTML, REPORT_MD, RESULTS_CSV

__all__ = ["build_report", "check_choices", "write_report"]


def check_choices(
    sweep: Sweep, *, baseline: str | Sequence[str] | None, metric: str | Sequence[str] | None
) -> None:
    """A ValueError naming the valid choices when ``baseline`` is no variant of the sweep
    or a ``metric`` is not one the sweep's runs report."""
    if baseline is not None and sweep.baseline is None:
        labels = "; ".join(v.label for v in sweep.variants)
        raise ValueError(
            f"--baseline {baseline!r} is not a variant of {sweep.dir}; the variants are: {labels}"
        )
    known = sweep.metrics() or list(METRICS)
    wanted = [] if metric is None else [metric] if isinstance(metric, str) else list(metric)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise ValueError(
            f"--metric {', '.join(unknown)}: not a metric of this sweep; choose from "
            f"{', '.join(known)}"
        )


def ladder_section(sweep: Sweep) -> str | None:
    """A ladder sweep's report top (title, ladder section, plot written), else None."""
    from glmlab.report.ladder import LADDER_PLOT, load_ladder
    from glmlab.report.ladder_markdown import render_ladder
    from glmlab.report.ladder_plot import plot_ladder

    ladder = load_ladder(sweep)
    if ladder is None:
        return None
    plot = plot_ladder(ladder, sweep.dir / LADDER_PLOT)
    lines = [f"# Ladder report: {sweep.name}", ""]
    if settings := shared_settings(sweep):  # what ran: plugins, objective, vocabulary
        lines += [settings, ""]
    lines += render_ladder(ladder, plot=plot)
    lines += [
        "## Every configuration of the ladder",
        "",
        "The sections below are the sweep's ordinary report, in which each (variant, rung, "
        "learning rate) is a configuration of its own and a ladder run's role "
        "(`ladder.role`: tuning, verdict or superseded, glmlab/ladder/roles.py) tells "
        "configurations apart: tuning runs are never pooled with the verdict seeds.",
        "",
    ]
    return "\n".join(lines) + "\n"


def write_report(sweep: Sweep) -> Path:
    """Write the report files of a loaded sweep into its directory; return report.md."""
    curves = plot_curves(sweep, sweep.dir / LOSS_CURVES)
    md = render_markdown(sweep, curves=curves)
    if (ladder := ladder_section(sweep)) is not None:  # a ladder sweep (glmlab/ladder/)
        md = ladder + md
    path = write_text_atomic(sweep.dir / REPORT_MD, md)
    html = markdown_to_html(md, base_dir=sweep.dir, title=f"Sweep report: {sweep.name}")
    write_text_atomic(sweep.dir / REPORT_HTML, html)
    write_text_atomic(sweep.dir / RESULTS_CSV, csv_text(sweep))
    return path


def build_report(
    sweep_dir: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    amend: Callable[[Sweep], None] | None = None,
    strict: bool = False,
) -> Path:
    """Load ``sweep_dir`` and write its report files (:func:`write_report`); return the
    .md. ``amend`` may fill in the sweep's unfinished runs first (``glmlab collect`` does).
    ``strict``: a baseline or metric that the sweep does not have is a ValueError that
    names the valid ones (``glmlab report``); otherwise the report says there is none."""
    sweep = load_sweep(sweep_dir, baseline=baseline, metric=metric)
    if amend is not None:
        amend(sweep)
    if strict:
        check_choices(sweep, baseline=baseline, metric=metric)
    return write_report(sweep)
