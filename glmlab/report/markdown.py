"""A sweep report as markdown: verdicts, runs per variant, what differs, the attention
backend, loss curves, a table per metric, provenance and the problem runs (docs/REPORTS.md).
:mod:`glmlab.report.html` turns the markdown into the HTML page, so the two never disagree.
"""

from __future__ import annotations

import dataclasses
import math

from glmlab.report.assess import (
    EXACT,
    NONE,
    SEEDS,
    reference_check,
    reference_levels,
    tests_of,
)
from glmlab.report.claims import claim_lines, judge_claims
from glmlab.report.header import shared_settings
from glmlab.report.load import Sweep, differing_config
from glmlab.report.metrics import REFERENCES, Metric, metric_info
from glmlab.report.plots import loss_caveat
from glmlab.report.provenance import render_provenance
from glmlab.report.rates import RateDiff
from glmlab.report.stats import Diff, summary_stats
from glmlab.report.sweep_verdicts import assessment
from glmlab.report.verdict_md import (
    METHOD,
    control_lines,
    fallback_note,
    family_line,
    md_cell,
    reference_summary,
    render_verdicts,
    verdict,
)
from glmlab.runs.layout import LOSS_CURVES, RunStatus

__all__ = [
    "fmt",
    "fmt_delta",
    "fmt_p",
    "md_cell",
    "reference_summary",
    "render_markdown",
    "render_problem_runs",
    "shared_settings",
    "verdict",
]


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, or a dash when missing."""
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def fmt_delta(d: Diff | RateDiff, digits: int) -> str:
    """A difference to the baseline, ``+d [low, high]`` (95%; a rate: ``+d (a/n vs b/m
    runs)``), bold when significant after the family adjustment (only differences in a
    family can be)."""
    if isinstance(d, RateDiff):
        text = d.describe(digits)
    else:
        text = f"{d.diff:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
    return f"**{text}**" if d.p_adjusted is not None and d.significant else text


def fmt_p(d: Diff | RateDiff) -> str:
    """The adjusted p-value of a difference in the report's family, with the raw one."""
    if d.p_adjusted is None:
        return "–"
    if abs(d.p_adjusted - d.p) < 1e-12:
        return f"{d.p_adjusted:.3g}"
    return f"{d.p_adjusted:.3g} (raw {d.p:.3g})"


def _with_family(
    sweep: Sweep, label: str, metric: str, d: Diff | RateDiff | None
) -> Diff | RateDiff | None:
    """``d`` with its adjusted p when it is in one of the report's families."""
    if d is None:
        return None
    p = assessment(sweep).p_adjusted(label, metric)
    return dataclasses.replace(d, p_adjusted=p) if p is not None else d


def render_problem_runs(sweep: Sweep) -> list[str]:
    """Markdown lines for the failed, diverged and unfinished runs: status, variant, seed,
    step, reason and run directory. The only place a report describes a failed run."""
    lines = []
    for v in sweep.variants:
        for r in v.runs:
            if r.status == RunStatus.COMPLETED:
                continue
            res = r.result
            lines.append(
                f"- {r.status}: {v.label}, seed {r.seed} at step {res.step}: "
                f"{res.error or 'stopped before max_steps; rerun to resume'} (`{r.dir}`)"
            )
            if logs := res.job_logs:  # the Slurm/submitit job's own output files
                lines.append(f"  - job logs: stdout `{logs['stdout']}`, stderr `{logs['stderr']}`")
    return lines or ["None: every run completed."]


def render_attention(sweep: Sweep) -> list[str]:
    """Per variant, the attention backend its runs used and how it was chosen, with the
    forward + backward times ``auto`` measured (``attention_selection`` in result.json)."""
    lines = []
    for v in sweep.variants:
        chosen: dict[str, int] = {}
        for r in v.runs:
            s = r.result.attention_selection
            if not s:
                continue
            timed = ", ".join(
                f"{name} {ms:.3g} ms"
                for name, ms in sorted((s.get("timings_ms") or {}).items(), key=lambda x: x[1])
            )
            text = f"{s['backend']} ({s['method']}{': ' + timed if timed else ''})"
            chosen[text] = chosen.get(text, 0) + 1
        lines += [f"- {v.label}: {text}, {n} of {len(v.runs)} runs" for text, n in chosen.items()]
    return lines


def _how(sweep: Sweep, name: str, m: Metric) -> str:
    tests = tests_of(sweep, name)
    if tests.method == NONE:
        extra = (
            ": each variant is scored on its own task; compare the evaluation suite's metrics"
            if name == "final_val_loss"
            else ""
        )
        return tests.reason + extra
    over = {
        SEEDS: f"95% intervals over seeds ({tests.reason})",
        EXACT: "the share of runs with its Clopper-Pearson 95% interval; Δ with Boschloo's "
        "exact test",
    }.get(
        tests.method,
        "95% intervals over seeds and items (paired by seed where the arms share their seeds)",
    )
    tested = (
        "tested in the report's family, p Holm-adjusted"
        if name in sweep.primary
        else "Δ with its 95% interval, not tested (not a verdict metric: add it to "
        "report.metric to test it)"
    )
    return f"{over}; {tested}"


def _metric_table(sweep: Sweep, name: str) -> list[str]:
    m = metric_info(name)
    direction = {True: "higher is better", False: "lower is better", None: ""}[m.higher_is_better]
    is_loss = name.endswith("_loss")
    tests = tests_of(sweep, name)
    lines = [f"### {m.label}" + (f" ({direction})" if direction else ""), ""]
    lines += [f"`{name}`: {m.note + '. ' if m.note else ''}{_how(sweep, name, m)}.", ""]
    header = (
        "| variant | mean ± std over seeds | 95% CI | n | Δ vs baseline [95% CI] | p (adjusted) |"
    )
    sep = "|---|---|---|---|---|---|"
    if is_loss:
        header, sep = header + " ppl at mean |", sep + "---|"
    lines += [header, sep]
    check = reference_check(sweep.runs, name, tests.intervals)
    control = assessment(sweep).control
    for v in sweep.variants:
        s = summary_stats(v.values(name))
        label = md_cell(v.label) + (" **(baseline)**" if v is sweep.baseline else "")
        label += " *(A/A control)*" if v.label == control else ""
        if s is None:
            row = [label, "–", "–", "0", "–", "–"]
        else:
            iv = tests.intervals.get(v.label)
            ci = (
                f"[{fmt(iv.low, m.digits)}, {fmt(iv.high, m.digits)}]"
                if iv and iv.low is not None
                else "–"
            )
            if check is not None and check[2].get(v.label) == "not past":
                ci += f" ⚠ not past {REFERENCES[check[0]]}"
            d = _with_family(sweep, v.label, name, tests.diffs.get(v.label))
            row = [
                label,
                f"{fmt(s.mean, m.digits)} ± {fmt(s.std, m.digits)}",
                ci,
                str(s.n),
                fmt_delta(d, m.digits) if d else "–",
                fmt_p(d) if d else "–",
            ]
        if is_loss:
            row.append(fmt(math.exp(min(s.mean, 700.0)), 2) if s else "–")
        lines.append("| " + " | ".join(row) + " |")
    for key, level in reference_levels(sweep.runs, name).items():
        row = [f"*reference: {REFERENCES[key]}*", fmt(level, m.digits), "–", "–", "–", "–"]
        if is_loss:
            row.append(fmt(math.exp(min(level, 700.0)), 2))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def render_markdown(sweep: Sweep, *, curves: bool) -> str:
    """The report as markdown; ``curves`` says whether the loss curves were written."""
    completed = sum(r.status == RunStatus.COMPLETED for r in sweep.runs)
    diverged = sum(r.status == RunStatus.DIVERGED for r in sweep.runs)
    others = len(sweep.runs) - completed - diverged
    base = f"`{sweep.baseline.label}`" if sweep.baseline else "none named (set report.baseline)"
    lines = [
        f"# Sweep report: {sweep.name}",
        "",
        f"{len(sweep.runs)} runs in `{sweep.dir.resolve()}`: {completed} completed, "
        f"{diverged} diverged, {others} failed or unfinished. Baseline: {base}.",
        "",
    ]
    if settings := shared_settings(sweep):
        lines += [settings, ""]
    lines += [
        "## Verdicts",
        "",
        *render_verdicts(sweep),
        "",
        *family_line(sweep),
        *control_lines(sweep),
        *reference_summary(sweep),
        *fallback_note(sweep),
        "",
        "## Claims",
        "",
        *claim_lines(judge_claims(sweep, sweep.claims)),
        "",
        METHOD,
        "",
        "## Runs per variant",
        "",
        "| variant | runs ok / total | diverged | failed | unfinished | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for v in sweep.variants:
        mark = " **(baseline)**" if v is sweep.baseline else ""
        ok = len(v.with_status(RunStatus.COMPLETED))
        div = len(v.with_status(RunStatus.DIVERGED))
        failed = len(v.with_status(RunStatus.FAILED))
        seeds = ",".join(str(r.seed) for r in v.runs)
        lines.append(
            f"| {md_cell(v.label)}{mark} | {ok} / {len(v.runs)} | {div} | {failed} | "
            f"{len(v.runs) - ok - div - failed} | {seeds} |"
        )
    table = differing_config({v.label: v.runs for v in sweep.variants})
    lines += ["", "## What differs between variants", ""]
    if table:
        lines.append(
            "| config key | " + " | ".join(md_cell(v.label) for v in sweep.variants) + " |"
        )
        lines.append("|---" * (len(sweep.variants) + 1) + "|")
        for key, row in table.items():
            lines.append(
                f"| {key} | " + " | ".join(md_cell(row[v.label]) for v in sweep.variants) + " |"
            )
    else:
        lines.append("Nothing but the seed.")
    if attention := render_attention(sweep):
        lines += ["", "## Attention backend", "", *attention]
    lines += ["", "## Loss curves", ""]
    if curves:
        lines += [
            "Mean over seeds, band from the lowest to the highest seed; × marks the last "
            "logged step of a diverged run.",
            "",
            f"![loss curves]({LOSS_CURVES})",
        ]
        if caveat := loss_caveat({v.label: v.runs for v in sweep.variants}):
            lines += ["", f"⚠ {caveat}."]
    else:
        lines.append(
            "matplotlib is not installed, so there are no plots: `pip install matplotlib`."
        )
    lines += ["", "## Metrics", ""]
    for name in sweep.metrics():
        lines += _metric_table(sweep, name)
    lines += render_provenance(
        [r.result.provenance for r in sweep.runs], [r.dir.name for r in sweep.runs]
    )
    lines += ["## Failed, diverged and unfinished runs", "", *render_problem_runs(sweep)]
    return "\n".join(lines) + "\n"
