"""A ladder's per-rung results as a table, for ``glmlab results SWEEP --table ladder``: one
row per (metric, variant, rung) with the measured difference to the baseline (the ladder
report's test), the rung's role (fitted or held out) and, at the held-out rung, the
predicted gap with its 95% prediction interval and whether it covered the measurement;
at each smaller rung, whether its sign and significance call agree with the held-out
rung's. Only verdict runs enter it (glmlab/ladder/roles.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from glmlab.report.ladder import Ladder, load_ladder
from glmlab.report.load import load_sweep
from glmlab.report.metrics import metric_info
from glmlab.report.table import FORMATS, emit, latex_escape
from glmlab.report.verdicts import key

__all__ = ["LADDER_COLUMNS", "ladder_latex", "ladder_rows", "render_ladder_table"]

LADDER_COLUMNS = (
    "metric",
    "variant",
    "rung",
    "role",
    "compute",
    "lr",
    "baseline_lr",
    "n",
    "baseline_n",
    "baseline_mean",
    "mean",
    "diff",
    "diff_low",
    "diff_high",
    "p",
    "significant",
    "no_comparison",
    "predicted_gap",
    "predicted_low",
    "predicted_high",
    "covered",
    "sign_agrees_with_held_out",
    "call_agrees_with_held_out",
)


def _num(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def ladder_rows(ladder: Ladder) -> list[dict[str, Any]]:
    """The rows (see the module docstring); every row has :data:`LADDER_COLUMNS`."""
    held = ladder.plan.held_out()
    rows = []
    for metric, trend in ladder.trends.items():
        check = trend.holdout
        for label in ladder.labels:
            if label == ladder.baseline:
                continue
            gap = next((g for g in check.gaps if g.variant == label), None) if check else None
            for rung in ladder.plan.ladder_rungs():
                arm = ladder.arms[(label, rung.name)]
                base = ladder.arms.get((ladder.baseline, rung.name))
                tests = trend.tests.get(rung.name)
                d = next((x for x in trend.diffs.get(label, []) if x.rung == rung.name), None)
                iv = tests.intervals.get(label) if tests else None
                ib = tests.intervals.get(ladder.baseline) if tests else None
                row: dict[str, Any] = dict.fromkeys(LADDER_COLUMNS)
                row.update(
                    metric=metric,
                    variant=label,
                    rung=rung.name,
                    role="held out" if held is not None and rung.name == held.name else "fit",
                    compute=arm.compute(),
                    lr=arm.lr,
                    baseline_lr=base.lr if base else None,
                    n=len(arm.completed()),
                    baseline_n=len(base.completed()) if base else 0,
                    baseline_mean=ib.estimate if ib else None,
                    mean=iv.estimate if iv else None,
                )
                if d is None:
                    row["no_comparison"] = trend.missing.get(label, {}).get(rung.name, "")
                else:
                    row.update(
                        diff=d.diff,
                        diff_low=d.low,
                        diff_high=d.high,
                        # adjusted in the ladder's family (glmlab/report/ladder_verdicts.py)
                        p=ladder.family.p(key(label, metric, rung.name, "difference")),
                        significant=d.significant,
                    )
                if gap is not None and row["role"] == "held out" and gap.predicted is not None:
                    row.update(
                        predicted_gap=gap.predicted.value,
                        predicted_low=_num(gap.predicted.low),
                        predicted_high=_num(gap.predicted.high),
                        covered=gap.covered,
                    )
                if gap is not None:
                    agree = next((a for a in gap.agreements if a.source == rung.name), None)
                    if agree is not None:
                        row.update(
                            sign_agrees_with_held_out=agree.sign,
                            call_agrees_with_held_out=agree.call,
                        )
                rows.append({k: _num(v) for k, v in row.items()})
    return rows


def ladder_latex(ladder: Ladder) -> str:
    """A booktabs table: per metric and variant, each rung's difference to the baseline
    with its 95% interval (bold with a dagger: significant), and at a held-out rung the
    predicted gap with its 95% prediction interval."""
    rungs = ladder.plan.ladder_rungs()
    held = ladder.plan.held_out()
    head = [
        latex_escape(r.name) + (" (held out)" if held and r.name == held.name else "")
        for r in rungs
    ]
    lines = [
        r"% glmlab results --table ladder --format latex; needs \usepackage{booktabs}",
        r"\begin{tabular}{ll" + "c" * len(rungs) + ("c" if held else "") + "}",
        r"\toprule",
        "Metric & Variant & "
        + " & ".join(head)
        + (r" & Predicted at " + latex_escape(held.name) if held else "")
        + r" \\",
        r"\midrule",
    ]
    for row_metric, trend in ladder.trends.items():
        digits = metric_info(row_metric).digits
        for label in ladder.labels:
            if label == ladder.baseline:
                continue
            cells = [latex_escape(metric_info(row_metric).label), latex_escape(label)]
            for rung in rungs:
                d = next((x for x in trend.diffs.get(label, []) if x.rung == rung.name), None)
                if d is None:
                    cells.append("--")
                    continue
                text = f"{d.diff:+.{digits}f}"
                if d.low is not None and d.high is not None:
                    text += f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
                cells.append(rf"\textbf{{{text}}}$^\dagger$" if d.significant else text)
            if held:
                g = next(
                    (
                        x
                        for x in (trend.holdout.gaps if trend.holdout else [])
                        if x.variant == label
                    ),
                    None,
                )
                p = g.predicted if g else None
                cells.append(
                    "--"
                    if p is None or not math.isfinite(p.half)
                    else f"{p.value:+.{digits}f} [{p.low:+.{digits}f}, {p.high:+.{digits}f}]"
                )
            lines.append(" & ".join(cells) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        "% variant - baseline per rung, 95% interval, verdict seeds at each arm's chosen lr only;",
        "% bold with a dagger: significant (the ladder report's test); predicted: fitted on the",
        "% smaller rungs, 95% prediction interval.",
    ]
    return "\n".join(lines) + "\n"


def render_ladder_table(
    sweep_dir: str | Path, fmt: str, out: str | Path | None = None
) -> str | None:
    """A ladder sweep's per-rung table in ``fmt`` (glmlab.report.table's formats): text,
    or written to ``out``; ValueError for a sweep that is no ladder."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown results format '{fmt}'; use one of {', '.join(FORMATS)}")
    ladder = load_ladder(load_sweep(sweep_dir))
    if ladder is None:
        raise ValueError(f"{sweep_dir} is no ladder sweep (no ladder.json): drop --table ladder")
    return emit(ladder_rows(ladder), fmt, out, latex=lambda: ladder_latex(ladder))
