"""The ladder section of a sweep report (report.md / report.html) and its console lines:
the rungs, the learning-rate grids and choices, per-rung differences, the fits, one verdict
per metric and the gap extrapolated to the target compute (from :class:`Ladder`)."""

from __future__ import annotations

import math

from glmlab.report.assess import reference_check
from glmlab.report.ladder import LADDER_PLOT, Ladder, MetricTrend
from glmlab.report.metrics import REFERENCES, metric_info
from glmlab.report.verdicts import key

__all__ = ["ladder_summary", "render_ladder", "verdict_lines"]


def _g(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _extrapolation(ladder: Ladder) -> str:
    top = ladder.plan.rungs[-1].flops
    return (
        f"extrapolation to C = {ladder.plan.target_compute:.3g} FLOPs "
        f"({ladder.plan.target_compute / top:.3g}x the largest rung)"
    )


def verdict_lines(ladder: Ladder) -> list[str]:
    """One line per metric and variant against the baseline: the verdict across scale
    and the gap at the target compute with its bootstrap interval."""
    if ladder.baseline is None:
        return ["No baseline to compare against (set report.baseline)."]
    lines = []
    for metric, trend in ladder.trends.items():
        info = metric_info(metric)
        for label in ladder.labels:
            if label == ladder.baseline:
                continue
            v = trend.verdicts.get(label)
            text = v.text if v else "no comparison (no completed seed runs)"
            gap = trend.gaps.get(label)
            interval = trend.boot.gaps.get(label) if trend.boot else None
            extra = ""
            if gap is not None:
                ci = f" [{_g(interval[0])}, {_g(interval[1])}]" if interval else ""
                undetermined = (
                    ""
                    if trend.fit and trend.fit.determined
                    else "; the fit is not determined by the points"
                )
                extra = (
                    f"; gap {_g(gap)}{ci} at the target ({_extrapolation(ladder)}{undetermined})"
                )
            lines.append(f"{info.label}, {label} vs {ladder.baseline}: {text}{extra}")
    return lines


def ladder_summary(ladder: Ladder) -> list[str]:
    """The console's ladder lines (after a sweep)."""
    return [f"  ladder: {line}" for line in verdict_lines(ladder)]


def _grid_table(ladder: Ladder) -> list[str]:
    plan = ladder.plan
    head = ["arm (variant @ rung)", *(f"lr {lr:g}" for lr in plan.lr_grid), "chosen lr", "note"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for (label, rung), choice in ladder.grid.items():
        cells = []
        for p in choice.points:
            value = _g(p.val_loss) if p.usable else p.status
            cells.append(f"**{value}**" if p.lr == choice.lr else value)
        note = "; ".join(
            x for x in (("⚠ " + choice.warning) if choice.warning else "", choice.problem) if x
        )
        lines.append(
            f"| {label} @ {rung} | "
            + " | ".join(cells)
            + f" | {_g(choice.lr)} | {note or 'inside the grid'} |"
        )
    return lines


def _rung_table(ladder: Ladder) -> list[str]:
    lines = [
        "| rung | shape | non-embedding params N | steps | tokens D | D / N | training FLOPs C |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ladder.plan.rungs:
        lines.append(
            f"| {r.name} | {r.shape} | {r.params:,} | {r.steps:,} | {r.tokens:,} | "
            f"{r.tokens / r.params:.1f} | {r.flops:.3g} |"
        )
    return lines


def _references(ladder: Ladder, metric: str) -> str:
    """Whether every arm at every rung is past the metric's trivial reference: its whole
    95% interval on the better side (the sweep report's rule)."""
    info = metric_info(metric)
    trend = ladder.trends.get(metric)
    bad, unknown, checked = [], [], 0
    for rung in ladder.plan.rungs:
        tests = trend.tests.get(rung.name) if trend else None
        runs = [r for lab in ladder.labels for r in ladder.verdict_runs.get((lab, rung.name), [])]
        check = reference_check(runs, metric, tests.intervals) if tests else None
        if check is None:
            continue
        ref, level, status = check
        for label, state in status.items():
            checked += 1
            iv = tests.intervals[label]
            if state == "not past":
                bad.append(
                    f"{label} @ {rung.name} ({_g(iv.estimate)} [{_g(iv.low)}, {_g(iv.high)}] vs {REFERENCES[ref]} {_g(level)})"
                )
            elif state == "no interval":
                unknown.append(f"{label} @ {rung.name}")
    if not checked:
        return ""
    if bad:
        return (
            f"- ⚠ {info.label}: not clearly past the trivial reference (95% interval) at "
            + "; ".join(bad)
        )
    if unknown:
        return f"- {info.label}: one seed run, no interval, at " + ", ".join(unknown)
    return (
        f"- {info.label}: every arm at every rung is past the trivial reference "
        "(unigram or chance; 95% intervals clear of it)."
    )


def _diff_table(ladder: Ladder, trend: MetricTrend) -> list[str]:
    info = metric_info(trend.metric)
    lines = [
        f"**{info.label}** (variant − baseline; 95% interval; "
        f"{'higher' if info.higher_is_better else 'lower'} is better; p adjusted in the "
        "ladder's family)",
        "",
        "| variant | rung | C | baseline mean | variant mean | difference [95% CI] | p (adjusted) | seeds (variant / baseline) | significant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rung in ladder.plan.rungs:
        tests = trend.tests.get(rung.name)
        for label in ladder.labels:
            r = next((x for x in trend.rungs.get(label, []) if x.name == rung.name), None)
            if r is None:
                continue
            base_i = tests.intervals.get(ladder.baseline) if tests else None
            var_i = tests.intervals.get(label) if tests else None
            d = r.diff
            p = ladder.family.p(key(label, trend.metric, rung.name, "difference"))
            cell = f"{_g(d.diff)} [{_g(d.low)}, {_g(d.high)}]" if d else "no comparison"
            ps = f"{_g(p, 3)} (raw {_g(d.p, 3)})" if d and p is not None else "–"
            seeds = f"{r.variant.phrase()} / {r.baseline.phrase()}"
            sig = "yes" if p is not None and p < 0.05 else "no" if d else "–"
            warn = f" ⚠ not past: {', '.join(r.behind_reference)}" if r.behind_reference else ""
            lines.append(
                f"| {label} | {rung.name} | {rung.flops:.3g} | {_g(base_i.estimate if base_i else None)} | "
                f"{_g(var_i.estimate if var_i else None)} | {cell}{warn} | {ps} | {seeds} | {sig} |"
            )
    methods = sorted({d.method for rs in trend.rungs.values() for r in rs if (d := r.diff)})
    lines += ["", f"Method per rung: {', '.join(methods) or 'none'} (glmlab/report/stats.py)."]
    return lines


def _stability_lines(ladder: Ladder) -> list[str]:
    """Each variant's divergence over the ladder's seed runs, when any run diverged."""
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
    return lines


def _fit_table(ladder: Ladder, trend: MetricTrend) -> list[str]:
    info = metric_info(trend.metric)
    fit = trend.fit
    if fit is None:
        return [f"**{info.label}**: no completed seed runs to fit."]
    scale = " fitted as the error rate 1 − y" if fit.flip else ""
    lines = [
        f"**{info.label}**{scale}: "
        + (
            "determined by the points."
            if fit.determined
            else f"**not determined by the points**: {fit.note}."
        ),
        "",
        "| variant | E [95% CI] | A [95% CI] | alpha [95% CI] |",
        "|---|---|---|---|",
    ]
    for label, curve in fit.curves.items():
        ci = (trend.boot.params.get(label) if trend.boot else None) or {}

        def cell(name: str, value: float, ci: dict = ci) -> str:
            b = ci.get(name)
            return f"{_g(value)} [{_g(b[0])}, {_g(b[1])}]" if b else _g(value)

        lines.append(
            f"| {label} | {cell('E', curve.E)} | {cell('A', curve.A)} | {cell('alpha', curve.alpha)} |"
        )
    return lines


FIT_TEXT = {
    "shared_e": "E shared by all variants of the sweep, A and alpha per variant (3 rungs cannot pin three parameters per variant)",
    "own_e": "E, A and alpha per variant",
    "log": "a pure power law in log space, log y = log A − alpha log C, without E",
}


def render_ladder(ladder: Ladder, *, plot: bool) -> list[str]:
    """The ladder section of report.md (report.html is made from it)."""
    plan = ladder.plan
    seeds = ", ".join(map(str, plan.seeds))
    lines = [
        "## Ladder: verdicts across scale",
        "",
        f"{len(ladder.labels)} variants x {len(plan.rungs)} rungs; each arm (variant at a rung) "
        f"trains a {len(plan.lr_grid)}-point learning-rate grid on tuning seed {plan.tuning_seed}, "
        f"and its seeds ({seeds}) at the lr with the lowest validation loss of the training "
        "objective (never the evaluation suite the verdicts are read from). "
        f"Baseline: {ladder.baseline or 'none (set report.baseline)'}.",
        "",
        "### Verdicts",
        "",
        *(f"- {line}" for line in verdict_lines(ladder)),
        "",
        "Categories (docs/REPORTS.md): *better/worse at every size* (significant at every "
        "rung, one sign; missing rungs are named), *crosses over*, *pooled* (the gap "
        "averaged over rungs is significant; with its trend per decade of compute: is the "
        "gap shrinking?), *equivalent within ±margin* at every size, *trade-off* (a call "
        "for the arm that diverged more often), *inconclusive* (with the effect it could "
        "have detected and the seeds the margin needs). "
        f"The tests: {ladder.family.describe()} The gap at the target is read off the fitted curves, "
        "an **extrapolation** beyond the largest rung, with a 95% interval from resampling "
        "each arm's seeds and refitting.",
        "",
        *_stability_lines(ladder),
        *(
            [
                "- No A/A control arm: `report.control` is set, but the ladder's sweeper "
                'adds none yet (docs/REPORTS.md, "The A/A control arm").'
            ]
            if ladder.control
            else []
        ),
        "",
        *(x for m in ladder.trends if (x := _references(ladder, m))),
        "",
        "### Rungs and token rule",
        "",
        f"D = {plan.tokens_per_param:g} tokens per non-embedding parameter; C = 6ND + 12 "
        "n_layers dim seq_len D (glmlab/ladder/compute.py).",
        "",
        *_rung_table(ladder),
        "",
        f"### Learning-rate grid (validation loss on seed {plan.tuning_seed}; chosen in bold)",
        "",
        *_grid_table(ladder),
        "",
        "### Per-rung differences",
        "",
    ]
    for trend in ladder.trends.values():
        lines += [*_diff_table(ladder, trend), ""]
    lines += [
        "### Fitted trends: y = E + A C^-alpha",
        "",
        f"Fit: {FIT_TEXT.get(plan.fit, plan.fit)}, least squares over every seed run "
        f"(scipy.optimize.least_squares); intervals from {plan.bootstrap} seed resamples.",
        "",
    ]
    for trend in ladder.trends.values():
        lines += [*_fit_table(ladder, trend), ""]
    lines += ["### Metric against compute", ""]
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
