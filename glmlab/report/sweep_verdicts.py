"""A sweep's verdicts (docs/REPORTS.md, "Verdicts"): every test a verdict or a claim rests
on in one family, adjusted, then one verdict per variant and verdict metric; the A/A
control arm in a family of its own.

The family holds, for each non-baseline variant and verdict metric, the difference to the
baseline (and the equivalence test where the experiment declared a margin,
``report.margin``); each variant's stability test (when it could be significant at all);
and each claim's comparison (``report.claims``) that is not one of those (another arm than
the baseline, or a metric that is no verdict metric). :mod:`glmlab.report.claims` reads its
differences and adjusted p-values from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from glmlab.config.claims import parse_claims
from glmlab.report.assess import (
    NONE,
    MetricTests,
    arm_of,
    reference_check,
    tests_of,
)
from glmlab.report.family import Family
from glmlab.report.load import Sweep, Variant, find_variant, report_settings
from glmlab.report.metrics import REFERENCES, declared_margin, margin_of, metric_info
from glmlab.report.rates import RATE_METRICS, RateDiff, rate_test
from glmlab.report.stability import Stability, count_runs, stability_test
from glmlab.report.stats import Diff, compare_arms
from glmlab.report.verdicts import Rung, Verdict, judge, key, register, register_stability
from glmlab.runs.layout import RunStatus

__all__ = ["CONTROL_KEY", "Assessment", "assessment", "control_variant"]

CONTROL_KEY = "train.stream"  # the A/A arm: the baseline under another seed stream


def control_variant(sweep: Sweep) -> Variant | None:
    """The sweep's A/A control arm: the baseline's overrides plus ``train.stream=k``
    (k > 0), or None."""
    if sweep.baseline is None:
        return None
    base = set(sweep.baseline.label.split(", ")) - {"(defaults)"}
    for v in sweep.variants:
        parts = set(v.label.split(", "))
        extra = parts - base
        if len(extra) == 1 and base <= parts:
            k, _, value = next(iter(extra)).partition("=")
            if k.lstrip("+~") == CONTROL_KEY and value not in ("0", "", "null"):
                return v
    return None


@dataclass
class Assessment:
    """A sweep's verdicts: the family, per (variant, metric) the rung and its verdict,
    per variant its stability, the claims' own comparisons, and the A/A control's family
    and verdicts."""

    family: Family
    margins: dict[str, float | None]
    rungs: dict[tuple[str, str], Rung] = field(default_factory=dict)
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    stability: dict[str, Stability] = field(default_factory=dict)
    claim_diffs: dict[tuple[str, str, str], Diff | RateDiff | None] = field(default_factory=dict)
    control: str | None = None
    control_family: Family = field(default_factory=lambda: Family("the A/A control"))
    control_verdicts: dict[str, Verdict] = field(default_factory=dict)
    baseline: str | None = None

    def p_adjusted(self, label: str, metric: str) -> float | None:
        """The adjusted p of a variant's difference on a metric (None: not in a family)."""
        fam = self.control_family if label == self.control else self.family
        return fam.p(key(label, metric, "", "difference"))

    def claim_difference(
        self, label: str, other: str, metric: str
    ) -> tuple[Diff | RateDiff | None, float | None]:
        """A claim's difference of ``label`` against ``other`` on ``metric``, with its
        adjusted p (the verdict metric's test when ``other`` is the baseline)."""
        if (label, other, metric) not in self.claim_diffs:
            return None, None
        rung = "" if other == self.baseline else f"vs {other}"
        return self.claim_diffs[(label, other, metric)], self.family.p(
            key(label, metric, rung, "difference")
        )

    @property
    def control_alarm(self) -> list[str]:
        """The metrics on which the A/A control differs significantly."""
        return [
            m
            for m in self.control_verdicts
            if (p := self.control_family.p(key(self.control, m, "", "difference"))) is not None
            and p < 0.05
        ]


def _behind(sweep: Sweep, tests: MetricTests, labels: Sequence[str]) -> tuple[str, ...]:
    check = reference_check(sweep.runs, tests.metric, tests.intervals)
    if check is None:
        return ()
    ref, _, status = check
    return tuple(f"{lab} ({REFERENCES[ref]})" for lab in labels if status.get(lab) == "not past")


def _rung(sweep: Sweep, tests: MetricTests, label: str) -> Rung:
    base = sweep.baseline.label
    return Rung(
        "",
        None,
        tests.diffs.get(label),
        tests.counts[label],
        tests.counts[base],
        _behind(sweep, tests, [label, base]),
    )


def _pair(variant: Variant, other: Variant, metric: str) -> Diff | RateDiff | None:
    """``variant`` against another arm than the baseline, by the report's test."""
    if metric in RATE_METRICS:
        return rate_test(variant.values(metric), other.values(metric))
    return compare_arms(arm_of(variant, metric), arm_of(other, metric))


def _claims(sweep: Sweep, out: Assessment, tested: list[str]) -> None:
    """Register every claim's comparison that the verdict metrics do not already hold."""
    for claim in parse_claims(sweep.claims):
        variant, other = find_variant(sweep, claim.variant), find_variant(sweep, claim.against)
        if variant is None or other is None or variant is other:
            continue
        for metric in [*claim.metrics, *claim.beside]:
            where = (variant.label, other.label, metric)
            if where in out.claim_diffs:
                continue
            if other is sweep.baseline:
                tests = tests_of(sweep, metric)
                d = tests.diffs.get(variant.label) if tests.method != NONE else None
                out.claim_diffs[where] = d
                if d is not None and metric not in tested:
                    out.family.add(key(variant.label, metric, "", "difference"), d.p, "claim")
                continue
            d = _pair(variant, other, metric)
            out.claim_diffs[where] = d
            if d is not None:
                out.family.add(
                    key(variant.label, metric, f"vs {other.label}", "difference"), d.p, "claim"
                )


def assessment(sweep: Sweep) -> Assessment:
    """The sweep's family, verdicts and control (module docstring), computed once."""
    if "assessment" in sweep.cache:
        return sweep.cache["assessment"]
    setting = report_settings(sweep.dir).get("margin") if sweep.dir else None
    out = Assessment(Family(), {m: margin_of(m, setting) for m in sweep.primary})
    base = sweep.baseline
    sweep.cache["assessment"] = out
    if base is None:
        return out
    out.baseline = base.label
    control = control_variant(sweep)
    out.control = control.label if control is not None else None
    others = [v for v in sweep.variants if v is not base and v is not control]
    tested = [m for m in sweep.primary if tests_of(sweep, m).method != NONE]
    for metric in tested:
        for v in others:
            rung = _rung(sweep, tests_of(sweep, metric), v.label)
            out.rungs[(v.label, metric)] = rung
            register(out.family, v.label, metric, [rung], declared_margin(metric, setting))
    _claims(sweep, out, tested)
    base_count = count_runs(r.status for r in base.runs)
    for v in others:
        out.stability[v.label] = stability_test(count_runs(r.status for r in v.runs), base_count)
        # A divergence rate among the verdict metrics is tested already.
        if RunStatus.DIVERGED.value not in tested:
            register_stability(out.family, v.label, out.stability[v.label])
    out.family.adjust()
    for metric in tested:
        info = metric_info(metric)
        for v in others:
            out.verdicts[(v.label, metric)] = judge(
                out.family,
                v.label,
                metric,
                [out.rungs[(v.label, metric)]],
                higher_is_better=info.higher_is_better,
                margin=out.margins[metric],
                stability=out.stability[v.label],
                digits=info.digits,
            )
    if control is not None:
        _control(sweep, out, control, tested)
    return out


def _control(sweep: Sweep, out: Assessment, control: Any, tested: list[str]) -> None:
    """The A/A control's differences on the verdict metrics, in a family of their own."""
    rungs = {m: _rung(sweep, tests_of(sweep, m), control.label) for m in tested}
    for metric, rung in rungs.items():
        register(out.control_family, control.label, metric, [rung], None)
    out.control_family.adjust()
    for metric, rung in rungs.items():
        info = metric_info(metric)
        out.control_verdicts[metric] = judge(
            out.control_family,
            control.label,
            metric,
            [rung],
            higher_is_better=info.higher_is_better,
            margin=None,
            digits=info.digits,
        )
