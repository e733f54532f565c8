"""The verdict part of a sweep report (report.md and the console's closing lines): one
verdict per variant and verdict metric, the stability line, the family, the A/A control,
the reference lines and the method paragraph, all from :func:`glmlab.report.sweep_verdicts.assessment`.
"""

from __future__ import annotations

from dataclasses import dataclass

from glmlab.report.assess import NONE, SEEDS, reference_check, tests_of
from glmlab.report.load import Sweep, Variant, report_settings
from glmlab.report.metrics import REFERENCES, TASK_OF_METRIC, metric_info
from glmlab.report.power import FRAGILE_Z
from glmlab.report.sweep_verdicts import assessment, control_variant
from glmlab.runs.layout import RunStatus

__all__ = [
    "METHOD",
    "ReferenceState",
    "control_lines",
    "fallback_note",
    "family_line",
    "md_cell",
    "reference_console",
    "reference_states",
    "reference_summary",
    "render_verdicts",
    "verdict",
]


def md_cell(text: str) -> str:
    """``text`` made safe for a markdown table cell."""
    return text.replace("|", "\\|")


def verdict(sweep: Sweep, variant: Variant, metric_name: str) -> str:
    """One variant's verdict on one metric against the baseline: its category and why."""
    m = metric_info(metric_name)
    a = assessment(sweep)
    found = a.verdicts.get((variant.label, metric_name))
    if a.control is not None and variant.label == a.control:
        found = a.control_verdicts.get(metric_name)
    if found is not None and found.kind == "no comparison" and not variant.values(metric_name):
        diverged = variant.with_status(RunStatus.DIVERGED)
        if diverged and not variant.with_status(RunStatus.COMPLETED):
            steps = ", ".join(str(r.result.step) for r in diverged)
            return (
                f"diverged in {len(diverged)} of {len(variant.runs)} runs (at steps {steps}): "
                "nothing to compare"
            )
        return f"no completed run reports {m.label}: nothing to compare"
    if found is not None:
        return found.text
    if sweep.baseline is None:
        return "no baseline to compare against"
    tests = tests_of(sweep, metric_name)
    if tests.method == NONE:
        return tests.reason
    counts = tests.counts.get(variant.label)
    if counts is not None and counts.completed < 2:
        return f"no comparison: {counts.phrase()} completed ({m.label})"
    return "no comparison"


def render_verdicts(sweep: Sweep) -> list[str]:
    """The verdicts: one table row per variant (the A/A control last), one column per
    verdict metric, then the stability of each variant whose runs diverged."""
    a = assessment(sweep)
    others = [v for v in sweep.variants if v is not sweep.baseline]
    if sweep.baseline is None or not others:
        return ["- No baseline to compare against."]
    others.sort(key=lambda v: v.label == a.control)
    header = ["variant", *(metric_info(m).label for m in sweep.primary)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for v in others:
        label = md_cell(v.label) + (" *(A/A control)*" if v.label == a.control else "")
        cells = [md_cell(verdict(sweep, v, m)) for m in sweep.primary]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    stable = []
    for label, s in a.stability.items():
        if s.variant.diverged or s.baseline.diverged:
            fam_p = a.family.p((label, "", "", "stability"))
            how = (
                f"Boschloo's exact test p = {fam_p:.3g} (adjusted)"
                if fam_p is not None
                else f"tested as the divergence rate (Boschloo's exact test p = {s.p:.3g})"
                if (label, RunStatus.DIVERGED.value, "", "difference") in a.family
                else (
                    f"Boschloo's exact test p = {s.p:.3g}, outside the family: with these "
                    f"run counts no outcome could be significant after adjustment"
                    if s.p is not None
                    else "no run ended in an arm"
                )
            )
            verdict_word = (
                "significantly different stability" if fam_p is not None and fam_p < 0.05 else ""
            )
            stable.append(
                f"- Stability, `{label}`: {s.phrase()} (95% Clopper-Pearson intervals); {how}"
                + (f": {verdict_word}" if verdict_word else "")
                + "."
            )
    return lines + (["", *stable] if stable else [])


def family_line(sweep: Sweep) -> list[str]:
    """The report's declared family of tests, and what an inconclusive call means."""
    a = assessment(sweep)
    if not len(a.family):
        return []
    return [
        f"- The tests: {a.family.describe()} Intervals are per comparison (95%, not adjusted). "
        f"A call is **fragile** when its p-value sits within {FRAGILE_Z:g} standard errors "
        "of the 5% threshold (docs/REPORTS.md, Reproducibility)."
    ]


def control_lines(sweep: Sweep) -> list[str]:
    """The A/A control's line: its differences, or the warning that the noise model is
    wrong; without a control arm, how to add one."""
    a = assessment(sweep)
    if sweep.baseline is None:
        return []
    control = control_variant(sweep)
    if control is None:
        if report_settings(sweep.dir).get("control"):
            return [
                "- ⚠ `report.control` is set, but this sweep has no A/A arm: its sweeper "
                "added none (the ladder's sweeper does not yet; for a sweep, "
                "`hydra/sweeper=glmlab_basic`, which the experiments select, does)."
            ]
        return [
            "- No A/A control arm: `report.control=true` adds one (the baseline again under "
            "an independent seed stream, `train.stream=1`), a check of the noise model."
        ]
    if a.control_alarm:
        names = ", ".join(metric_info(m).label for m in a.control_alarm)
        return [
            f"- ⚠ **The A/A control differs from the baseline** on {names} "
            f"(`{control.label}`: the same recipe under another seed stream; "
            f"its tests: {a.control_family.describe().rstrip('.')}). Two runs of one recipe should not differ: the "
            "sweep's noise model is wrong (seeds not independent, too few seeds for the "
            "variance they show, or a stream that leaks), so read every verdict above with "
            "suspicion."
        ]
    return [
        f"- A/A control (`{control.label}`, the baseline under another seed stream): no "
        "significant difference on any verdict metric, as it should be "
        f"(its tests: {a.control_family.describe().rstrip('.')})."
    ]


@dataclass(frozen=True)
class ReferenceState:
    """One metric against its trivial reference: the arms behind it, those without an
    interval, the level and the arms' span of means, formatted."""

    label: str
    name: str  # "the unigram level 5.7500"
    short: str  # "unigram 5.7500"
    span: str
    behind: list[str]
    unknown: bool  # one run per arm: no interval anywhere


def reference_states(sweep: Sweep) -> list[ReferenceState]:
    """For every metric with a trivial reference (chance, unigram): whether each arm's
    whole 95% interval is past it."""
    states = []
    for metric in sweep.metrics():
        tests = tests_of(sweep, metric)
        check = reference_check(sweep.runs, metric, tests.intervals)
        if check is None:
            continue
        ref, level, status = check
        m = metric_info(metric)
        means = [iv.estimate for iv in tests.intervals.values() if iv is not None]
        span = f"{min(means):.{m.digits}f}–{max(means):.{m.digits}f}" if means else "–"
        behind = [lab for lab, s in status.items() if s == "not past"]
        unknown = [lab for lab, s in status.items() if s == "no interval"]
        states.append(
            ReferenceState(
                m.label,
                f"the {REFERENCES[ref]} level {level:.{m.digits}f}",
                f"{REFERENCES[ref]} {level:.{m.digits}f}",
                span,
                behind,
                bool(unknown) and len(unknown) == len(status),
            )
        )
    return states


def reference_summary(sweep: Sweep) -> list[str]:
    """A line per metric with a trivial reference: every arm past it, or a ⚠ naming the
    arms whose 95% interval is not clear of it (report.md)."""
    lines = []
    for r in reference_states(sweep):
        if r.behind:
            lines.append(
                f"- ⚠ {r.label}: {', '.join(f'`{b}`' for b in r.behind)} not clearly past "
                f"{r.name} (variants {r.span}): differences on this metric mean little; train "
                "longer or larger."
            )
        elif r.unknown:
            lines.append(
                f"- {r.label}: one run per variant, no interval: whether the variants are past "
                f"{r.name} is not known (variants {r.span})."
            )
        else:
            lines.append(
                f"- {r.label}: every variant is past {r.name} (variants {r.span}; 95% intervals "
                "clear of it)."
            )
    return lines


def reference_console(sweep: Sweep) -> list[str]:
    """The same, in at most three lines for a terminal: the metrics every arm is past, the
    ones some arm is not (⚠), the ones with no interval."""
    states = reference_states(sweep)
    past = [r for r in states if not r.behind and not r.unknown]
    behind = [r for r in states if r.behind]
    unknown = [r for r in states if r.unknown and not r.behind]
    lines = []
    if past:
        lines.append(
            "every variant is past its trivial reference (95% intervals clear of it) on "
            + ", ".join(f"{r.label} ({r.short})" for r in past)
        )
    if behind:
        cells = "; ".join(
            f"{r.label} ({r.short}, variants {r.span}: {', '.join(f'`{b}`' for b in r.behind)})"
            for r in behind
        )
        lines.append(
            f"⚠ not clearly past the trivial reference: {cells}: differences on these metrics "
            "mean little; train longer or larger"
        )
    if unknown:
        lines.append(
            "one run per variant, no interval: past the trivial reference or not is unknown on "
            + ", ".join(f"{r.label} ({r.short})" for r in unknown)
        )
    return lines


def fallback_note(sweep: Sweep) -> list[str]:
    """A line naming the suite metrics tested over seeds only (no per-item scores)."""
    fallen = [
        metric_info(m).label
        for m in sweep.metrics()
        if m in TASK_OF_METRIC and tests_of(sweep, m).method == SEEDS
    ]
    if not fallen:
        return []
    return [
        f"- Over seeds only: {', '.join(fallen)}: these run directories hold no per-item "
        "scores (eval_items.json), so the item sample's part of the uncertainty is not "
        "counted; rerun the sweep in a fresh directory to get them."
    ]


METHOD = (
    "**Method.** Each verdict metric's difference Δ (variant mean − baseline mean) is "
    "tested *paired*: runs of one seed share initialisation and data order, and every run "
    "scores the same evaluation items. Its variance has a seed part (the spread of the "
    "per-seed differences, a t over seeds: about 2 degrees of freedom with 3 seeds), an "
    "item part (variant × item, which more seeds never average away) and each run's item "
    "noise, estimated by a two-way ANOVA of seeds × items; the 95% interval and p use "
    "Student's t with Satterthwaite's degrees of freedom. Arms with different seeds (a "
    "diverged or missing run) are compared unpaired. Metrics without per-item scores (the "
    "validation loss) use the paired t over seeds, or Welch's test. The verdict metrics' "
    "tests, equivalence tests against the margin (two one-sided tests) and stability "
    "tests form one family, Holm-adjusted; **bold** = significant after adjustment. Other "
    "metrics show Δ with its interval and no test. Throughput and memory are shown, not "
    "tested; the validation loss is not tested between different objectives. Diverged "
    "runs count: each arm's divergence rate is shown and tested, and a call that favours "
    "the arm that diverged more is a *trade-off*. The level and coverage of these tests "
    "are measured by `benchmarks/calibration.py` (docs/REPORTS.md)."
)
