"""The verdict compared with the claim: each claim of ``report.claims``
(:class:`~glmlab.config.claims.ClaimConfig`) judged on the report's tested differences.

:func:`judge` maps one metric's tested difference, a small plain record
(:class:`Difference`: estimate, interval, adjusted p, significant?), and the claim's
expected direction to one of :data:`OUTCOMES`, with the reason. It knows nothing of how the
difference was tested: :func:`tested_difference` is the one place that reads the report's
test records, so a change of test changes only that function.

A claim is *not testable at this scale* when an arm it compares is not past the reference
levels the claim requires (``requires``: the arm did not learn what the comparison needs),
when an arm is missing, or when its metric could not be tested at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glmlab.config.claims import ClaimConfig, parse_claims
from glmlab.report.assess import reference_levels, tests_of
from glmlab.report.load import Sweep, Variant, find_variant
from glmlab.report.metrics import metric_info
from glmlab.report.rates import RateDiff
from glmlab.report.stats import ALPHA, Diff, Estimate
from glmlab.report.sweep_verdicts import assessment

__all__ = [
    "OUTCOMES",
    "ClaimVerdict",
    "Difference",
    "Outcome",
    "claim_lines",
    "claim_summary",
    "judge",
    "judge_claims",
    "tested_difference",
]

REPRODUCED, OPPOSITE, NOT_SIGNIFICANT, UNTESTABLE = (
    "reproduced",
    "opposite",
    "not significant",
    "not testable at this scale",
)
OUTCOMES = (REPRODUCED, OPPOSITE, NOT_SIGNIFICANT, UNTESTABLE)


@dataclass(frozen=True)
class Difference:
    """One metric's tested difference, variant minus the arm it is compared with."""

    estimate: float
    low: float | None  # 95% interval; None where the test gives none
    high: float | None
    p: float | None  # adjusted where the report adjusts
    significant: bool


@dataclass(frozen=True)
class Outcome:
    """A claim's verdict on one metric (one of :data:`OUTCOMES`) and why."""

    verdict: str
    reason: str


def _show(d: Difference, digits: int) -> str:
    text = f"{d.estimate:+.{digits}f}"
    if d.low is not None and d.high is not None:
        text += f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
    return text + (f", p = {d.p:.3g}" if d.p is not None else "")


def judge(
    diff: Difference | None,
    *,
    expect: str,
    higher_is_better: bool,
    margin: float | None = None,
    untestable: str = "",
    digits: int = 4,
) -> Outcome:
    """The verdict on one metric: ``expect`` (better, worse, equivalent within ``margin``)
    against the tested ``diff``; ``untestable`` (a reason) or no test: not testable."""
    if untestable:
        return Outcome(UNTESTABLE, untestable)
    if diff is None:
        return Outcome(UNTESTABLE, "no test: too few runs, or no variance between them")
    shown = _show(diff, digits)
    if expect == "equivalent":
        if margin is None or diff.low is None or diff.high is None:
            return Outcome(UNTESTABLE, f"{shown}: equivalence needs a margin and an interval")
        if -margin <= diff.low and diff.high <= margin:
            return Outcome(REPRODUCED, f"{shown}: the 95% interval is inside ±{margin:g}")
        if diff.low > margin or diff.high < -margin:
            return Outcome(OPPOSITE, f"{shown}: different by more than the margin ±{margin:g}")
        return Outcome(NOT_SIGNIFICANT, f"{shown}: neither inside nor beyond ±{margin:g}")
    if diff.estimate == 0:
        return Outcome(NOT_SIGNIFICANT, f"{shown}: no difference")
    observed = "better" if (diff.estimate > 0) == higher_is_better else "worse"
    if not diff.significant:
        return Outcome(NOT_SIGNIFICANT, f"{shown}: {observed}, not significant at {ALPHA:g}")
    if observed == expect:
        return Outcome(REPRODUCED, f"{shown}: significantly {observed}, as claimed")
    return Outcome(OPPOSITE, f"{shown}: significantly {observed}; the claim says {expect}")


def tested_difference(d: Diff | RateDiff | None, p: float | None) -> Difference | None:
    """The plain record of one of the report's test results (the only reader of them),
    with ``p`` adjusted in the report's family (glmlab/report/sweep_verdicts.py)."""
    if d is None:
        return None
    p = d.p if p is None else p
    if isinstance(d, Diff):
        return Difference(d.diff, d.low, d.high, p, p < ALPHA)
    return Difference(d.diff, None, None, p, p < ALPHA)


def _find(sweep: Sweep, spelled: str | None) -> Variant | None:
    return find_variant(sweep, spelled)


def _pair(sweep: Sweep, variant: Variant, other: Variant, metric: str) -> Difference | None:
    """The difference on ``metric`` as the report tests it, with its p adjusted in the
    report's one family (every claim's comparison is in it)."""
    d, p = assessment(sweep).claim_difference(variant.label, other.label, metric)
    return tested_difference(d, p)


def _not_past(sweep: Sweep, arm: Variant, metric: str, reference: str) -> str:
    """Why ``arm`` is not clearly past ``reference`` on ``metric``, or ''."""
    m = metric_info(metric)
    iv: Estimate | None = tests_of(sweep, metric).intervals.get(arm.label)
    level = reference_levels(arm.runs, metric).get(reference)
    if iv is None or level is None:
        return f"`{arm.label}` has no {m.label} or no {reference} level to check it against"
    edge = iv.estimate if iv.low is None else (iv.high if m.higher_is_better is False else iv.low)
    past = edge < level if m.higher_is_better is False else edge > level
    if past:
        return ""
    return (
        f"`{arm.label}` is not past the {reference} level {level:.{m.digits}f} on {m.label} "
        f"({iv.estimate:.{m.digits}f}): it did not learn what the comparison needs"
    )


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim and its verdict per verdict metric (``beside``: the biased metrics' outcomes)."""

    claim: ClaimConfig
    arms: tuple[str, str]  # variant, the arm it is compared with
    outcomes: dict[str, Outcome]
    beside: dict[str, Outcome]

    @property
    def verdict(self) -> str:
        """The one word for the claim: the verdict its tested metrics agree on, else
        ``mixed``; not testable when no metric could be tested."""
        found = {o.verdict for o in self.outcomes.values() if o.verdict != UNTESTABLE}
        if not found:
            return UNTESTABLE
        return found.pop() if len(found) == 1 else "mixed"


def _judge_claim(sweep: Sweep, claim: ClaimConfig) -> ClaimVerdict:
    variant, other = _find(sweep, claim.variant), _find(sweep, claim.against)
    arms = (claim.variant, claim.against or (sweep.baseline.label if sweep.baseline else "–"))
    untestable = ""
    if variant is None or other is None:
        untestable = f"the sweep has no arm {arms[0] if variant is None else arms[1]}"
    else:
        reasons = [
            _not_past(sweep, arm, metric, ref)
            for arm in (variant, other)
            for metric, ref in claim.requires.items()
        ]
        untestable = "; ".join(r for r in reasons if r)

    def outcome(metric: str, expect: str) -> Outcome:
        m = metric_info(metric)
        why = untestable
        if not why and metric in claim.metric_requires:
            ref = claim.metric_requires[metric]
            why = "; ".join(
                r for arm in (variant, other) if (r := _not_past(sweep, arm, metric, ref))
            )
        diff = None if why else _pair(sweep, variant, other, metric)
        return judge(
            diff,
            expect=expect,
            higher_is_better=bool(m.higher_is_better),
            margin=claim.margins.get(metric),
            untestable=why,
            digits=m.digits,
        )

    return ClaimVerdict(
        claim,
        arms,
        {metric: outcome(metric, claim.expect) for metric in claim.metrics},
        {metric: outcome(metric, claim.expect) for metric in claim.beside},
    )


def judge_claims(sweep: Sweep, claims: Any) -> list[ClaimVerdict]:
    """Every claim of ``claims`` (``report.claims``) judged on ``sweep``."""
    return [_judge_claim(sweep, c) for c in parse_claims(claims)]


def claim_summary(v: ClaimVerdict) -> str:
    """One console line: ``claim 'span shuffling helps': not significant (...)``."""
    parts = "; ".join(f"{metric_info(m).label}: {o.verdict}" for m, o in v.outcomes.items())
    reasons = {o.reason for o in v.outcomes.values()}
    reason = reasons.pop() if v.verdict == UNTESTABLE and len(reasons) == 1 else ""
    return f"claim '{v.claim.name}': {v.verdict} ({reason or parts})"


def claim_lines(verdicts: list[ClaimVerdict]) -> list[str]:
    """The report's claims section as markdown lines."""
    if not verdicts:
        return ["No claim declared (report.claims)."]
    lines = []
    for v in verdicts:
        c = v.claim
        source = f" ({c.source})" if c.source else ""
        lines.append(
            f"- **{c.name}**{source}: `{v.arms[0]}` against `{v.arms[1]}`, expected "
            f"{c.expect}. Verdict: **{v.verdict}**."
        )
        for metric, o in v.outcomes.items():
            lines.append(
                f"  - {metric_info(metric).label}: **{o.verdict}**: {o.reason}. "
                f"Neutral: {c.metrics[metric]}."
            )
        for metric, o in v.beside.items():
            lines.append(
                f"  - beside, not deciding: {metric_info(metric).label}: {o.verdict}: "
                f"{o.reason}. Bias: {c.beside[metric]}."
            )
        if c.confounds:
            lines.append("  - confounds not removed at this scale: " + "; ".join(c.confounds))
    return lines
