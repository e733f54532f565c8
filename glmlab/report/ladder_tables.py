"""The tables and notes of a ladder report (glmlab/report/ladder_markdown.py lays them out):
rungs with their data, the lr grid with what the seeds ran at, the lr sensitivity from the
grid runs, per-rung differences (every rung, a missing one with why), the fits with their
intervals, the compute-equivalent multipliers and the prediction check."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np

from glmlab.ladder.compute import MAX_EPOCHS
from glmlab.ladder.predict import Estimate
from glmlab.report.ladder import Ladder
from glmlab.report.ladder_trend import MetricTrend
from glmlab.report.metrics import metric_info
from glmlab.report.verdicts import key

__all__ = [
    "ci",
    "diff_table",
    "fit_intro",
    "fit_table",
    "grid_table",
    "integrity_lines",
    "multiplier_section",
    "rung_table",
    "sensitive_rungs",
    "sensitivity_section",
]


def _g(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def ci(e: Estimate | None, digits: int = 4) -> str:
    if e is None:
        return "–"
    return f"{_g(e.value, digits)} [{_g(e.low, digits)}, {_g(e.high, digits)}]"


def integrity_lines(ladder: Ladder) -> list[str]:
    """Which runs are left out and why; rungs that repeat their data."""
    out = []
    old = ladder.superseded()
    if old:
        arms = sorted({f"{a.label} @ {a.rung.name}" for a in ladder.arms.values() if a.superseded})
        out.append(
            f"- {len(old)} runs are **superseded** and left out of every verdict (seed runs at an "
            "lr their arm no longer chooses, or grid runs at an lr the grid no longer has): "
            + "; ".join(arms)
        )
    epochs = ladder.over_epochs()
    if epochs:
        out.append(
            f"- ⚠ past {MAX_EPOCHS:g} epochs of the training split at "
            + ", ".join(epochs)
            + ": returns from repeated data fall off (Muennighoff et al. 2023); size is "
            "confounded with repetition"
        )
    return out


def rung_table(ladder: Ladder) -> list[str]:
    lines = [
        "| rung | shape | N | total params | steps | tokens D | D / N | D / total params | unique tokens | epochs | C (measured) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    held = ladder.plan.held_out()
    for r in ladder.plan.rungs:
        arm = next(a for (_, n), a in ladder.arms.items() if n == r.name)
        data = arm.data()
        total = next(
            (
                (run.result.compute or {}).get("total_params")
                for run in [*arm.runs, *arm.grid_runs]
                if (run.result.compute or {}).get("total_params")
            ),
            None,
        )
        epochs = data.get("epochs")
        warn = " ⚠" if isinstance(epochs, int | float) and epochs > MAX_EPOCHS else ""
        name = r.name + (" (held out)" if held is not None and r.name == held.name else "")
        unique = data.get("unique_tokens")
        lines.append(
            f"| {name} | {r.shape} | {r.params:,} | {f'{total:,}' if total else '–'} | {r.steps:,} | "
            f"{r.tokens:,} | {r.tokens / r.params:.1f} | {_g(data.get('tokens_per_param'), 3)} | "
            f"{f'{unique:,}' if unique else '–'} | "
            f"{_g(epochs, 3)}{warn} | {ladder.rung_compute(r):.3g} |"
        )
    return lines


def grid_table(ladder: Ladder) -> list[str]:
    plan = ladder.plan
    head = [
        "arm (variant @ rung)",
        *(f"lr {lr:g}" for lr in plan.lr_grid),
        "grid's choice",
        "seeds ran at",
        "note",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for arm in ladder.arms.values():
        choice = arm.choice
        cells = []
        for p in choice.points:
            value = _g(p.val_loss) if p.usable else p.status
            cells.append(f"**{value}**" if p.lr == choice.grid_best else value)
        notes = [
            x for x in (("⚠ " + choice.warning) if choice.warning else "", choice.problem) if x
        ]
        if arm.lr_moved:
            notes.append(
                "⚠ the grid now chooses another lr than the seeds ran at: rerun the command"
            )
        if arm.superseded:
            notes.append(f"{len(arm.superseded)} superseded runs left out")
        chosen = (
            f"{_g(choice.lr)} ({'fitted' if choice.fitted else 'grid point'})" if choice.lr else "–"
        )
        lines.append(
            f"| {arm.label} @ {arm.rung.name} | "
            + " | ".join(cells)
            + f" | {chosen} | {_g(arm.ran_lr)} | {'; '.join(notes) or 'inside the grid'} |"
        )
    return [*lines, "", "Bold: the grid point with the lowest loss."]


def _step(ladder: Ladder) -> float:
    grid = ladder.plan.lr_grid
    return statistics.median(math.log(b / a) for a, b in itertools.pairwise(grid))


def sensitive_rungs(ladder: Ladder, trend: MetricTrend, label: str) -> list[str]:
    """Rungs where the tuning seeds' difference changes sign within one grid step of the
    arms' chosen lrs (against the measured difference's sign where there is one)."""
    out = []
    step = _step(ladder) * 1.01
    for rung in ladder.plan.ladder_rungs():
        row = trend.sensitivity.get((label, rung.name))
        lrs = [ladder.arms[(lab, rung.name)].lr for lab in (label, ladder.baseline)]
        if not row or any(lr is None for lr in lrs):
            continue
        near = [d for lr, d in row.items() if any(abs(math.log(lr / a)) <= step for a in lrs)]
        measured = next((d.diff for d in trend.diffs.get(label, []) if d.rung == rung.name), None)
        signs = {np.sign(d) for d in near} | (
            {np.sign(measured)} if measured is not None else set()
        )
        if len(signs - {0.0}) > 1:
            out.append(rung.name)
    return out


def sensitivity_section(ladder: Ladder) -> list[str]:
    plan = ladder.plan
    if not any(t.sensitivity for t in ladder.trends.values()):
        return []
    lines = [
        "### Learning-rate sensitivity (tuning seeds)",
        "",
        "Variant − baseline with both arms at each grid lr, on the tuning seeds (their mean, "
        "no interval: a check that the verdict does not hang on the lr, not a test); the "
        "verdict's own seeds ran only at each arm's chosen lr.",
        "",
    ]
    for metric, trend in ladder.trends.items():
        head = [
            "variant @ rung",
            *(f"lr {lr:g}" for lr in plan.lr_grid),
            "chosen lrs (variant / baseline)",
        ]
        lines += [
            f"**{metric_info(metric).label}**",
            "",
            "| " + " | ".join(head) + " |",
            "|---" * len(head) + "|",
        ]
        for (label, rung), row in trend.sensitivity.items():
            lrs = [ladder.arms[(lab, rung)].lr for lab in (label, ladder.baseline)]
            lines.append(
                f"| {label} @ {rung} | "
                + " | ".join(_g(row.get(lr)) for lr in plan.lr_grid)
                + f" | {' / '.join(_g(x) for x in lrs)} |"
            )
        lines.append("")
    return lines


def diff_table(ladder: Ladder, trend: MetricTrend) -> list[str]:
    info = metric_info(trend.metric)
    lines = [
        f"**{info.label}** (variant − baseline; 95% interval; "
        f"{'higher' if info.higher_is_better else 'lower'} is better)",
        "",
        "| variant | rung | C | lr (variant / baseline) | baseline mean | variant mean | difference [95% CI] | p (adjusted) | significant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rung in ladder.plan.ladder_rungs():
        tests = trend.tests.get(rung.name)
        for label in ladder.labels:
            if label == ladder.baseline:
                continue
            lrs = " / ".join(
                _g(ladder.arms[(lab, rung.name)].lr) for lab in (label, ladder.baseline)
            )
            d = next((x for x in trend.diffs.get(label, []) if x.rung == rung.name), None)
            if d is None:
                why = trend.missing.get(label, {}).get(rung.name, "no comparison")
                lines.append(
                    f"| {label} | {rung.name} | – | {lrs} | – | – | no comparison: {why} | – | – |"
                )
                continue
            base_i = tests.intervals.get(ladder.baseline) if tests else None
            var_i = tests.intervals.get(label) if tests else None
            raw = tests.diffs.get(label) if tests else None
            p = ladder.family.p(key(label, trend.metric, rung.name, "difference"))
            ps = f"{_g(p, 3)} (raw {_g(raw.p, 3)})" if raw is not None and p is not None else "–"
            lines.append(
                f"| {label} | {rung.name} | {d.compute:.3g} | {lrs} | {_g(base_i.estimate if base_i else None)} | "
                f"{_g(var_i.estimate if var_i else None)} | {_g(d.diff)} [{_g(d.low)}, {_g(d.high)}] | "
                f"{ps} | {'yes' if d.significant else 'no'} |"
            )
    methods = sorted(
        {
            getattr(d, "method", "exact (Boschloo)")
            for t in trend.tests.values()
            for d in t.diffs.values()
            if d is not None
        }
    )
    return [
        *lines,
        "",
        f"Method per rung: {', '.join(methods) or 'none'} (glmlab/report/stats.py); p adjusted in "
        "the ladder's one family (Holm).",
    ]


def fit_intro(ladder: Ladder) -> list[str]:
    plan = ladder.plan
    return [
        f"Fit `{plan.fit}`: "
        + (
            "the richest form the points determine, tried in the order E per variant, E shared "
            "by the variants, pure power law (log y = log A − alpha log C)"
            if plan.fit == "auto"
            else "as the ladder file names it"
        )
        + ". **Determined** needs at least 2 residual degrees of freedom over the (variant, "
        "rung) cells, no parameter at a bound, 95% intervals of E and alpha inside their "
        f"bounds, and at most 2.5% of {plan.bootstrap} seed-resample refits failing or hitting a "
        "bound. Intervals: t on the residual degrees of freedom, parameter covariance from the "
        "Jacobian (scipy.optimize.least_squares), the residual variance the larger of the runs' "
        "and the cells' lack of fit.",
    ]


def _param(fit, i: int, shift: float = 0.0, log: bool = False) -> str:
    if i is None:
        return "–"
    value = float(fit.theta[i])
    se = math.sqrt(max(float(fit.cov[i, i]), 0.0)) if np.all(np.isfinite(fit.cov)) else math.inf
    e = Estimate(value + shift, se, fit.df)
    if log:
        return f"{_g(math.exp(e.value))} [{_g(math.exp(e.low) if math.isfinite(e.low) else None)}, {_g(math.exp(e.high) if math.isfinite(e.high) else None)}]"
    return ci(e)


def fit_table(ladder: Ladder, trend: MetricTrend) -> list[str]:
    info = metric_info(trend.metric)
    sel = trend.selection
    if sel is None or sel.fit is None:
        tried = "; ".join(f"{m}: {why}" for m, why in (sel.tried if sel else {}).items())
        return [
            f"**{info.label}**: **no fit**: the points determine no form ({tried or 'no points'}); nothing is extrapolated."
        ]
    fit = sel.fit
    scale = ""
    if trend.two_step is not None:
        scale = (
            f" through {metric_info(trend.two_step.loss).label} (two steps)"
            if not trend.two_step.why_not
            else f" as the error rate 1 − y (no two-step prediction: {trend.two_step.why_not})"
        )
    status = (
        "determined by the points"
        if sel.determined
        else f"**not determined by the points**: {sel.why_not()}"
    )
    lines = [
        f"**{info.label}**{scale}: fit {fit.mode} ({status}); {fit.cells} cells, "
        f"{len(fit.theta)} parameters, {sel.refits.text()}."
        + (f" The points support: {sel.supported}." if sel.supported else "")
        + (
            " Tried: " + "; ".join(f"{m}: {w}" for m, w in sel.tried.items()) + "."
            if sel.tried
            else ""
        ),
        "",
        "| variant | E [95% CI] | A [95% CI] | alpha [95% CI] |",
        "|---|---|---|---|",
    ]
    for label in fit.names:
        ie, ia, il = fit.index(label)
        shift = float(fit.theta[il]) * math.log(fit.c0)
        lines.append(
            f"| {label} | {_param(fit, ie)} | {_param(fit, ia, shift, log=True)} | {_param(fit, il)} |"
        )
    if trend.two_step is not None and trend.two_step.links:
        lines += [
            "",
            f"Accuracy against {metric_info(trend.two_step.loss).label}: floor + (1 − floor) / (1 + exp(k (L − L0))), per variant, over its completed runs:",
            "",
            "| variant | floor | k [95% CI] | L0 [95% CI] | runs | losses | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, link in trend.two_step.links.items():
            lines.append(
                f"| {label} | {_g(link.floor, 3)} | {_param(link, 0, log=True)} | {_param(link, 1)} | "
                f"{link.df + 2} | {_g(link.span[0])}–{_g(link.span[1])} | {link.note or 'determined'} |"
            )
    return lines


def multiplier_section(ladder: Ladder) -> list[str]:
    rows = [
        (metric, label, ratio, est)
        for metric, t in ladder.trends.items()
        for label, by_ratio in t.multipliers.items()
        for ratio, est in by_ratio.items()
    ]
    if not rows:
        return []
    lines = [
        "### Compute-equivalent multiplier",
        "",
        "k: the variant at the largest rung's C matches the baseline at k x C (fitted curves; "
        "k > 1: the variant is worth more compute). Per token ratio when the ladder has a budget axis.",
        "",
        "| metric | variant | tokens per parameter | k [95% CI] |",
        "|---|---|---|---|",
    ]
    for metric, label, ratio, est in rows:
        cell = "– (the baseline's curve never reaches the variant's value)"
        if est is not None:
            lo = math.exp(est.low) if math.isfinite(est.low) else None
            hi = math.exp(est.high) if math.isfinite(est.high) else None
            cell = f"{_g(math.exp(est.value), 3)} [{_g(lo, 3)}, {_g(hi, 3)}]"
        lines.append(f"| {metric_info(metric).label} | {label} | {ratio:g} | {cell} |")
    return [*lines, ""]
