"""A sweep report as markdown: verdicts, runs per variant, what differs, the attention
backend, loss curves, a table per metric, provenance and the problem runs (docs/REPORTS.md).
:mod:`glmlab.report.html` turns the markdown into the HTML page, so the two never disagree.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from typing import Any

from glmlab.report.assess import NONE, PAIRED, WELCH, reference_levels, tests_of
from glmlab.report.load import Run, Sweep, Variant, differing_config
from glmlab.report.metrics import REFERENCES, TASK_OF_METRIC, Metric, metric_info
from glmlab.report.provenance import render_provenance
from glmlab.report.bootstrap import N_BOOT, PairedDiff, Welch, summary_stats
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


def fmt_delta(d: PairedDiff | Welch, digits: int) -> str:
    """A difference to the baseline: ``+d [low, high]`` (paired bootstrap) or ``+d ± se``
    (Welch), bold when significant (after Holm's adjustment where there is one)."""
    if isinstance(d, PairedDiff):
        text = f"{d.diff:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
    else:
        text = f"{d.diff:+.{digits}f} ± {d.se:.{digits}f}"
    return f"**{text}**" if d.significant else text


def fmt_p(d: PairedDiff | Welch) -> str:
    """The p-value a verdict rests on: Holm-adjusted where several variants were tested."""
    return f"{d.p:.3g}" if d.p_adjusted is None else f"{d.p_adjusted:.3g} (raw {d.p:.3g})"


def md_cell(text: str) -> str:
    """``text`` made safe for a markdown table cell."""
    return text.replace("|", "\\|")


def _direction(metric: Metric, diff: float) -> str:
    if metric.higher_is_better is None or diff == 0:
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == metric.higher_is_better else "worse"


def _steps(runs: Iterable[Run]) -> str:
    return ", ".join(str(r.result.step) for r in runs)


def verdict(sweep: Sweep, variant: Variant, metric_name: str) -> str:
    """A short phrase: the variant's difference to the baseline on one metric."""
    m = metric_info(metric_name)
    diverged = variant.with_status(RunStatus.DIVERGED)
    n_runs = len(variant.runs)
    values = variant.values(metric_name)
    if not values:
        if variant.with_status(RunStatus.COMPLETED):
            return f"no completed run reports {m.label}"
        if diverged:
            return f"diverged in {len(diverged)} of {n_runs} runs (at steps {_steps(diverged)}): nothing to compare"
        return "no completed run: nothing to compare"
    note = (
        f"; {len(diverged)} of {n_runs} runs diverged (at steps {_steps(diverged)}) and are excluded"
        if diverged
        else ""
    )
    tests = tests_of(sweep, metric_name)
    base_values = sweep.baseline.values(metric_name) if sweep.baseline else []
    if not base_values:
        return f"{fmt(statistics.fmean(values), m.digits)} (no baseline value to compare){note}"
    d = tests.diffs.get(variant.label)
    if d is None:
        diff = statistics.fmean(values) - statistics.fmean(base_values)
        why = tests.reason if tests.method == NONE else "too few runs or no variance for a test"
        return f"{diff:+.{m.digits}f} ({why}){note}"
    sig = f"significant, {_direction(m, d.diff)}" if d.significant else "not significant"
    return f"{fmt_delta(d, m.digits)}, p = {fmt_p(d)}: {sig}{note}"


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
            if logs := res.get("job_logs"):  # the Slurm/submitit job's own output files
                lines.append(f"  - job logs: stdout `{logs['stdout']}`, stderr `{logs['stderr']}`")
    return lines or ["None: every run completed."]


def render_attention(sweep: Sweep) -> list[str]:
    """Per variant, the attention backend its runs used and how it was chosen, with the
    forward + backward times ``auto`` measured (``attention_selection`` in result.json)."""
    lines = []
    for v in sweep.variants:
        chosen: dict[str, int] = {}
        for r in v.runs:
            s = r.result.get("attention_selection")
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


def _metric_table(sweep: Sweep, name: str) -> list[str]:
    m = metric_info(name)
    direction = {True: "higher is better", False: "lower is better", None: ""}[m.higher_is_better]
    is_loss = name.endswith("_loss")
    tests = tests_of(sweep, name)
    lines = [f"### {m.label}" + (f" ({direction})" if direction else ""), ""]
    how = {
        PAIRED: "95% CI and Δ from the paired bootstrap over seeds and items",
        WELCH: f"95% CI over seeds (t); Δ ± SE with Welch's t-test ({tests.reason})",
        NONE: tests.reason
        + (
            ": each variant is scored on its own task; compare the evaluation suite's metrics"
            if name == "final_val_loss"
            else ""
        ),
    }[tests.method]
    lines += [f"`{name}`: {m.note + '. ' if m.note else ''}{how}.", ""]
    header = "| variant | mean ± std over seeds | 95% CI | n | Δ vs baseline | p |"
    sep = "|---|---|---|---|---|---|"
    if is_loss:
        header, sep = header + " ppl at mean |", sep + "---|"
    lines += [header, sep]
    for v in sweep.variants:
        s = summary_stats(v.values(name))
        label = md_cell(v.label) + (" **(baseline)**" if v is sweep.baseline else "")
        if s is None:
            row = [label, "–", "–", "0", "–", "–"]
        else:
            iv = tests.intervals.get(v.label)
            ci = (
                f"[{fmt(iv.low, m.digits)}, {fmt(iv.high, m.digits)}]"
                if iv and iv.low is not None
                else "–"
            )
            d = tests.diffs.get(v.label)
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


METHOD = (
    "**Method.** Every run scores the same evaluation items, so each variant is compared "
    "with the baseline *paired by item*: the difference Δ (variant mean − baseline mean) "
    "gets a 95% interval from a hierarchical bootstrap ({n_boot} replicates, fixed seed) "
    "that resamples each variant's seeds and then the items, one item resample shared by "
    "both sides; the seed part is rescaled to the seed variance alone (run-to-run spread "
    "less its item noise) and the p-value is twice the share of replicates on the far side "
    "of zero. With several variants, p-values are Holm-adjusted per metric; **bold** = "
    "significant at 5% after adjustment. Metrics without per-item scores (the validation "
    "loss, older run directories) fall back to Welch's t-test over seeds; throughput and "
    "memory are shown, not tested; the validation loss is not tested between different "
    "objectives. Reference rows: chance (cloze), a unigram model of the training split's "
    "tokens and the untrained model, scored on the same items. Diverged and failed runs are "
    "left out and listed at the end."
)


def shared_settings(sweep: Sweep) -> str:
    """One line with the settings every run shares: steps, batch, model, corpus, versions."""
    runs = [r for r in sweep.runs if r.config]
    if not runs:
        return ""

    def same(key: str, source: str = "config") -> Any:
        values = {
            json.dumps(r.config.get(key) if source == "config" else _dig(r.result.to_dict(), key))
            for r in runs
        }
        return json.loads(values.pop()) if len(values) == 1 else None

    parts = []
    steps, batch, seq = same("train.max_steps"), same("train.batch_size"), same("data.seq_len")
    if steps is not None:
        parts.append(f"{steps} steps" + (f" × {batch} × {seq} tokens" if batch and seq else ""))
    layers, dim, params = same("model.n_layers"), same("model.dim"), same("n_params", "result")
    if layers and dim:
        parts.append(
            f"model {layers} × {dim}" + (f" ({params / 1e6:.2f}M parameters)" if params else "")
        )
    corpus, python = same("data.corpus"), same("provenance.python", "result")
    if corpus:
        parts.append(f"corpus {corpus}" + (f" (Python {python})" if python else ""))
    for pkg in ("glmlab", "torch"):
        if version := same(f"provenance.{pkg}.version", "result"):
            parts.append(f"{pkg} {version}")
    return "Shared settings: " + ", ".join(parts) + "." if parts else ""


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def reference_summary(sweep: Sweep) -> list[str]:
    """Verdict lines on whether the variants trained past the trivial references."""
    lines = []
    for metric, reference in (("infill_token_loss", "unigram"), ("cloze_acc", "chance")):
        level = reference_levels(sweep.runs, metric).get(reference)
        if level is None:
            continue
        m = metric_info(metric)
        tests = tests_of(sweep, metric)
        behind = []
        for v in sweep.variants:
            iv = tests.intervals.get(v.label)
            if iv is None:
                continue
            # Past the reference when the whole 95% interval is on the better side.
            edge = iv.high if m.higher_is_better is False else iv.low
            if edge is None:
                edge = iv.estimate
            past = edge < level if m.higher_is_better is False else edge > level
            if not past:
                behind.append(v.label)
        means = [iv.estimate for iv in tests.intervals.values() if iv is not None]
        span = f"{fmt(min(means), m.digits)}–{fmt(max(means), m.digits)}" if means else "–"
        if behind:
            lines.append(
                f"- ⚠ {m.label}: {', '.join(f'`{b}`' for b in behind)} not clearly past "
                f"the {REFERENCES[reference]} level {fmt(level, m.digits)} (variants {span}): "
                "the differences between variants mean little; train longer or larger."
            )
        else:
            lines.append(
                f"- {m.label}: every variant is past the {REFERENCES[reference]} level "
                f"{fmt(level, m.digits)} (variants {span}; 95% intervals clear of it)."
            )
    return lines


def fallback_note(sweep: Sweep) -> list[str]:
    """A line naming the suite metrics tested over seeds only (no per-item scores)."""
    fallen = [
        metric_info(m).label
        for m in sweep.metrics()
        if m in TASK_OF_METRIC and tests_of(sweep, m).method == WELCH
    ]
    if not fallen:
        return []
    return [
        f"- Over seeds only (Welch's t-test): {', '.join(fallen)}: these run directories "
        "hold no per-item scores (eval_items.json), so items cannot be paired; rerun "
        "the sweep in a fresh directory to get them."
    ]


def render_verdicts(sweep: Sweep) -> list[str]:
    """The verdicts: one table row per variant, one column per verdict metric."""
    others = [v for v in sweep.variants if v is not sweep.baseline]
    if sweep.baseline is None or not others:
        return ["- No baseline to compare against."]
    header = ["variant", *(metric_info(m).label for m in sweep.primary)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for v in others:
        cells = [verdict(sweep, v, m) for m in sweep.primary]
        lines.append("| " + " | ".join([md_cell(v.label), *map(md_cell, cells)]) + " |")
    return lines


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
        *reference_summary(sweep),
        *fallback_note(sweep),
        "",
        METHOD.format(n_boot=N_BOOT),
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
    else:
        lines.append(
            "matplotlib is not installed, so there are no plots: `pip install matplotlib`."
        )
    lines += ["", "## Metrics", ""]
    for name in sweep.metrics():
        lines += _metric_table(sweep, name)
    lines += render_provenance(
        [r.result.to_dict() for r in sweep.runs], [r.dir.name for r in sweep.runs]
    )
    lines += ["## Failed, diverged and unfinished runs", "", *render_problem_runs(sweep)]
    return "\n".join(lines) + "\n"
