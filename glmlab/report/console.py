"""A sweep's closing lines on the console: its verdicts, its claims' verdicts, how its runs
were launched and where its report is (printed by
:class:`glmlab.cli.callback.SweepReportCallback` when a multirun ends)."""

from __future__ import annotations

from pathlib import Path

from glmlab.report.claims import claim_summary, judge_claims
from glmlab.report.load import Sweep
from glmlab.report.metrics import metric_info
from glmlab.report.verdict_md import control_lines, family_line, reference_console, verdict
from glmlab.runs.layout import REPORT_HTML

__all__ = ["sweep_summary"]


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
    notes = [*family_line(sweep), *control_lines(sweep), *reference_console(sweep)]
    lines += [f"  {line.lstrip('- ')}" for line in notes]
    lines += [f"  {claim_summary(v)}" for v in judge_claims(sweep, sweep.claims)]
    if launched is not None:
        lines.append(f"  ran {launched} (hydra.launcher.n_jobs sets how many at once)")
    lines.append(f"  report: {report} (and {REPORT_HTML})")
    return "\n".join(lines).replace("**", "")
