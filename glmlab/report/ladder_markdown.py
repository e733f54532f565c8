"""The ladder section of a sweep report (report.md / report.html) and its console lines:
one verdict per metric and variant (with what it lacks, the gap at the target, fitted-curve
crossings, a gap contradicting every rung, lr warnings), the prediction check, and the
tables (glmlab/report/ladder_tables.py)."""

from __future__ import annotations

import math

from glmlab.ladder.spec import show_lr
from glmlab.report import ladder_tables as tables
from glmlab.report.assess import reference_check
from glmlab.report.ladder import LADDER_PLOT, Ladder
from glmlab.report.ladder_trend import MetricTrend, target_of
from glmlab.report.metrics import REFERENCES, metric_info
from glmlab.report.verdicts import key

__all__ = [
    "holdout_lines",
    "holdout_section",
    "ladder_summary",
    "reference_lines",
    "render_ladder",
    "stability_lines",
    "verdict_lines",
]

FORM = {
    "own_e": "E per variant",
    "shared_e": "E shared by the variants",
    "log": "pure power law",
}


def _g(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def fit_words(trend: MetricTrend) -> str:
    """Which fit the gap is read off, in words ('' when none)."""
    sel = trend.selection
    if sel is None or trend.predictor is None:
        return ""
    via = ""
    if trend.two_step is not None and not trend.two_step.why_not:
        via = f", accuracy through {metric_info(trend.two_step.loss).label}"
    words = f"fit: {sel.fit.mode}, {FORM[sel.fit.mode]}{via}"
    if not sel.determined:
        words += "; ⚠ not determined by the points: " + sel.why_not()
        if sel.supported:
            words += f"; the points support: {sel.supported}"
    return words


def _lr_warnings(ladder: Ladder, trend: MetricTrend, label: str) -> list[str]:
    out = []
    arms = [a for a in ladder.arms.values() if a.label in (label, ladder.baseline)]
    edge = [
        f"{a.label} @ {a.rung.name} ({'smallest' if a.choice.at_edge == 'low' else 'largest'})"
        for a in arms
        if a.choice.at_edge
    ]
    if edge:
        out.append(
            "⚠ best lr at the grid's edge (the optimum may lie outside it): " + ", ".join(edge)
        )
    moved = [
        f"{a.label} @ {a.rung.name} (seeds at {show_lr(a.ran_lr)}, grid now {show_lr(a.choice.lr)})"
        for a in arms
        if a.lr_moved
    ]
    if moved:
        out.append(
            "⚠ the grid on disk chooses another lr than the seeds ran at: "
            + ", ".join(moved)
            + "; rerun the command"
        )
    flips = tables.sensitive_rungs(ladder, trend, label)
    if flips:
        out.append(
            "⚠ lr-sensitive at " + ", ".join(flips) + ": the tuning seeds' difference changes sign "
            "within one grid step of the chosen lrs"
        )
    return out


def verdict_lines(ladder: Ladder) -> list[str]:
    """One line per metric and variant against the baseline: the verdict across scale,
    the gap at the target with its 95% interval, and what to be wary of."""
    if ladder.baseline is None:
        return ["No baseline to compare against (set report.baseline)."]
    target = target_of(ladder)
    lines = []
    for metric, trend in ladder.trends.items():
        info = metric_info(metric)
        for label in ladder.labels:
            if label == ladder.baseline:
                continue
            v = trend.verdicts.get(label)
            parts = [v.text if v else "no comparison (no completed seed runs)"]
            gap = trend.gaps.get(label)
            if gap is not None:
                parts.append(
                    f"gap {_g(gap.value)} [{_g(gap.low)}, {_g(gap.high)}] at C = "
                    f"{target.compute:.3g} FLOPs ({target.label}; {fit_words(trend)})"
                )
            elif trend.selection is not None:
                parts.append(
                    "no fit: "
                    + (trend.selection.why_not() or "nothing to fit")
                    + "; nothing is extrapolated"
                )
            cross = trend.crossings.get(label) or []
            if cross:
                top = max(c for byc in trend.cells.values() for c in byc)
                where = ", ".join(
                    f"{c:.3g} ({'inside the ladder' if c <= top else 'beyond the ladder'})"
                    for c in cross
                )
                parts.append(f"the fitted curves cross at C = {where}")
            if trend.contradicts.get(label):
                parts.append("⚠ the fitted gap's sign contradicts every measured rung")
            parts += _lr_warnings(ladder, trend, label)
            lines.append(f"{info.label}, {label} vs {ladder.baseline}: " + "; ".join(parts))
    return lines


def holdout_lines(ladder: Ladder) -> list[str]:
    """One line per metric and variant: the prediction check's outcome."""
    lines = []
    for metric, trend in ladder.trends.items():
        check = trend.holdout
        if check is None:
            continue
        label = metric_info(metric).label
        if check.problem and not check.gaps:
            lines.append(f"prediction check at {check.rung}, {label}: {check.problem}")
            continue
        for g in check.gaps:
            if g.predicted is None or g.measured is None:
                why = check.problem or (
                    "no measured difference" if g.measured is None else "no prediction"
                )
                lines.append(f"prediction check at {check.rung}, {label}, {g.variant}: {why}")
                continue
            sign, call, n = g.rungs_agreeing()
            lines.append(
                f"prediction check at {check.rung}, {label}, {g.variant}: gap predicted "
                f"{_g(g.predicted.value)} [{_g(g.predicted.low)}, {_g(g.predicted.high)}], measured "
                f"{_g(g.measured.diff)} ({'covered' if g.covered else 'NOT covered'}); sign agrees "
                f"at {sign} of {n} smaller rungs, significance call at {call} of {n}"
            )
    return lines


def ladder_summary(ladder: Ladder) -> list[str]:
    """The console's ladder lines (after a sweep)."""
    return [f"  ladder: {line}" for line in [*verdict_lines(ladder), *holdout_lines(ladder)]]


def holdout_section(ladder: Ladder) -> list[str]:
    held = ladder.plan.held_out()
    lines = [
        f"### Prediction check: rung {held.name} held out",
        "",
        f"Fitted on the smaller rungs ({', '.join(r.name for r in ladder.plan.fit_rungs())}) only, "
        f"then compared with what {held.name} measured. Intervals: 95% prediction intervals "
        "(the fit's uncertainty plus the held-out runs' own noise). Decision agreement: whether "
        "the sign, and the significance call, at each smaller rung match the held-out rung's.",
        "",
    ]
    for metric, trend in ladder.trends.items():
        check, info = trend.holdout, metric_info(metric)
        if check is None:
            continue
        lines += [
            f"**{info.label}** (fit: {trend.holdout_fit})"
            + (f": {check.problem}" if check.problem else ""),
            "",
        ]
        if check.values:
            lines += [
                "| variant | predicted [95% PI] | measured | error | covered |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {v.variant} | {tables.ci(v.predicted)} | {_g(v.measured)} ({v.runs} seeds) | {_g(v.error, 3)} | {'yes' if v.covered else 'no'} |"
                for v in check.values
            ]
            lines.append("")
        lines += [
            "| variant | gap predicted [95% PI] | gap measured [95% CI] | error | covered | sign agrees (smaller rungs) | call agrees (smaller rungs) | prediction's sign / call |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for g in check.gaps:
            sign, call, n = g.rungs_agreeing()
            own = next((a for a in g.agreements if a.source == "prediction"), None)
            measured = (
                f"{_g(g.measured.diff)} [{_g(g.measured.low)}, {_g(g.measured.high)}]"
                if g.measured
                else "– (no comparison)"
            )
            lines.append(
                f"| {g.variant} | {tables.ci(g.predicted)} | {measured} | {_g(g.error, 3)} | "
                f"{'–' if g.covered is None else 'yes' if g.covered else 'no'} | {sign} of {n} | {call} of {n} | "
                f"{'–' if own is None else ('agrees' if own.sign else 'differs') + ' / ' + ('agrees' if own.call else 'differs')} |"
            )
        lines.append("")
    return lines


def _intro(ladder: Ladder) -> str:
    plan = ladder.plan
    seeds = ", ".join(map(str, plan.seeds))
    tuning = ", ".join(map(str, plan.grid_seeds()))
    how = (
        "the minimum of a parabola in log lr through the best grid point and its neighbours"
        if plan.lr_choice == "fit"
        else "the grid point with the lowest loss"
    )
    groups = len(plan.ratio_groups())
    budget = f" at {groups} token ratios (the budget axis)" if groups > 1 else ""
    return (
        f"{len(ladder.labels)} variants x {len(plan.ladder_rungs())} rungs{budget}; each arm "
        f"(variant at a rung) trains a {len(plan.lr_grid)}-point learning-rate grid on tuning "
        f"seed{'s' if len(plan.grid_seeds()) > 1 else ''} {tuning}, and its verdict seeds "
        f"({seeds}) at the lr read off the grid's validation loss of the training objective "
        f"({how}; never the evaluation suite the verdicts are read from). Only the verdict "
        "seeds at that lr enter a verdict; tuning runs never do. "
        f"Baseline: {ladder.baseline or 'none (set report.baseline)'}."
    )


def reference_lines(ladder: Ladder) -> list[str]:
    """Per metric: whether every arm's verdict runs are past the trivial reference, by the
    sweep report's rule (the arm's whole 95% interval on the better side of it)."""
    out = []
    for metric, trend in ladder.trends.items():
        info = metric_info(metric)
        bad, unknown, checked = [], [], 0
        for rung in ladder.plan.ladder_rungs():
            tests = trend.tests.get(rung.name)
            runs = [r for lab in ladder.labels for r in ladder.arms[(lab, rung.name)].runs]
            check = reference_check(runs, metric, tests.intervals) if tests else None
            if check is None:
                continue
            ref, level, status = check
            for label, state in status.items():
                checked += 1
                iv = tests.intervals[label]
                if state == "not past":
                    bad.append(
                        f"{label} @ {rung.name} ({_g(iv.estimate)} [{_g(iv.low)}, "
                        f"{_g(iv.high)}] vs {REFERENCES[ref]} {_g(level)})"
                    )
                elif state == "no interval":
                    unknown.append(f"{label} @ {rung.name}")
        if bad:
            out.append(
                f"- ⚠ {info.label}: not clearly past the trivial reference (95% interval) at "
                + "; ".join(bad)
            )
        elif unknown:
            out.append(f"- {info.label}: one seed run, no interval, at " + ", ".join(unknown))
        elif checked:
            out.append(
                f"- {info.label}: every arm at every rung is past the trivial reference "
                "(unigram or chance; 95% intervals clear of it)."
            )
    return out


def stability_lines(ladder: Ladder) -> list[str]:
    """Each variant's divergence over its seed runs, when any run diverged; and the A/A
    control that a ladder does not add yet."""
    lines = []
    for label, s in ladder.stability.items():
        if s.variant.diverged or s.baseline.diverged:
            p = ladder.family.p(key(label, "", "", "stability"))
            test = (
                f"Boschloo's exact test p = {p:.3g} (adjusted)"
                if p is not None
                else f"Boschloo's exact test p = {s.p:.3g}, outside the family"
                if s.p is not None
                else "no test"
            )
            lines.append(f"- Stability, {label} (seed runs over all rungs): {s.phrase()}; {test}.")
    if ladder.control:
        lines.append(
            "- No A/A control arm: `report.control` is set, but the ladder's sweeper adds "
            'none yet (docs/REPORTS.md, "The A/A control arm").'
        )
    return lines


def render_ladder(ladder: Ladder, *, plot: bool) -> list[str]:
    """The ladder section of report.md (report.html is made from it)."""
    plan = ladder.plan
    lines = [
        "## Ladder: verdicts across scale",
        "",
        _intro(ladder),
        "",
        "### Verdicts",
        "",
        *(f"- {line}" for line in verdict_lines(ladder)),
        "",
        'Categories (docs/REPORTS.md, "Verdicts"): *better/worse at every size* '
        "(significant at every rung, one sign; a rung without a comparison is named), "
        "*crosses over*, *pooled* (the gap averaged over the rungs is significant; with its "
        "trend per decade of compute: is the gap shrinking?), *equivalent within ±margin* at "
        "every size, *trade-off* (a call for the arm that diverged more often), "
        f"*inconclusive* (with what it could have detected). The tests: {ladder.family.describe()} "
        "The gap at the target is read off the fitted curves (an extrapolation past the "
        "largest rung), with a 95% t interval from the fit's parameter covariance (delta "
        "method).",
        "",
        *stability_lines(ladder),
        *reference_lines(ladder),
        *tables.integrity_lines(ladder),
        "",
    ]
    if plan.held_out() is not None:
        lines += [*holdout_section(ladder), ""]
    lines += [
        "### Rungs and token rule",
        "",
        f"D = {plan.tokens_per_param:g} tokens per non-embedding parameter N"
        + (
            f" (the budget axis adds {', '.join(f'{r:g}' for r in list(plan.ratio_groups())[1:])})"
            if len(plan.ratio_groups()) > 1
            else ""
        )
        + "; C as the runs measured it (glmlab/ladder/compute.py: 6ND, attention, the head "
        "at the scored positions); unique tokens and epochs over the training split.",
        "",
        *tables.rung_table(ladder),
        "",
        f"### Learning-rate grid (validation loss on tuning seeds {', '.join(map(str, plan.grid_seeds()))})",
        "",
        *tables.grid_table(ladder),
        "",
        *tables.sensitivity_section(ladder),
        "### Per-rung differences",
        "",
    ]
    for trend in ladder.trends.values():
        lines += [*tables.diff_table(ladder, trend), ""]
    lines += ["### Fitted trends: y = E + A C^-alpha", "", *tables.fit_intro(ladder), ""]
    for trend in ladder.trends.values():
        lines += [*tables.fit_table(ladder, trend), ""]
    lines += [*tables.multiplier_section(ladder), "### Metric against compute", ""]
    if plot:
        lines += [
            "Seed runs (dots) and their range per rung (band), fitted curves (solid over the "
            "rungs, dotted beyond: extrapolation), target compute (vertical line).",
            "",
            f"![metric against compute]({LADDER_PLOT})",
        ]
    else:
        lines.append("matplotlib is not installed, so there is no plot: `pip install matplotlib`.")
    if ladder.unmatched:
        lines += [
            "",
            f"{len(ladder.unmatched)} run directories are not part of this ladder's plan and are left out.",
        ]
    return [*lines, ""]
