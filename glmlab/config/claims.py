"""``report.claims``: what an experiment claims to test, checked before any run (a report
reads them back from the sweep's multirun.yaml). Each claim names the arm it is about, the
arm it is compared with, the paper's expected direction, its verdict metrics with why each
is neutral to the factor the experiment varies, the reference levels every compared arm
must pass for the comparison to mean anything, the metrics shown beside the verdict with
their bias, and the confounds the setting could not remove (docs/EVALUATION.md, "Claims").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from glmlab.config.rules import ConfigError, checked_dataclass, plain_container, rule, show_value

__all__ = [
    "EXPECTATIONS",
    "REFERENCE_LEVELS",
    "ClaimConfig",
    "margins_are_positive",
    "parse_claims",
]

# The variant compared with ``against``: its metric is expected better, worse, or the same
# within a margin.
EXPECTATIONS = ("better", "worse", "equivalent")
# The reference levels a run's eval_items.json records (glmlab/eval/suite.py).
REFERENCE_LEVELS = ("chance", "unigram", "random_init")


@dataclass
class ClaimConfig:
    """One entry of ``report.claims``."""

    name: str = MISSING  # the claim in a few words: "span shuffling helps"
    source: str = ""  # where the paper makes it: "GLM paper, Table 6"
    variant: str = MISSING  # the arm the claim is about, spelled as report.baseline
    against: str | None = None  # the arm it is compared with; null: report.baseline
    expect: str = rule("worse", choices=EXPECTATIONS)  # variant vs against, per verdict metric
    # verdict metric -> why it is neutral to the factor the experiment varies
    metrics: dict[str, str] = field(default_factory=dict)
    # expect=equivalent: metric -> the largest difference that still counts as the same
    margins: dict[str, float] = field(default_factory=dict)
    # metric -> the reference level every compared arm must be past (95% interval clear),
    # else the claim is not testable at this scale
    requires: dict[str, str] = field(default_factory=dict)
    # verdict metric -> the reference level every compared arm must be past on it, else
    # that metric alone is not testable (no arm learned the task it measures)
    metric_requires: dict[str, str] = field(default_factory=dict)
    # metrics shown beside the verdict (not deciding it) -> the bias each has
    beside: dict[str, str] = field(default_factory=dict)
    confounds: list[str] = field(default_factory=list)  # known, not removed at this scale


def _problems(claim: ClaimConfig, where: str) -> list[str]:
    out = []
    if not claim.metrics:
        out.append(
            f"{where}.metrics is empty: name at least one verdict metric and why it is neutral"
        )
    if claim.expect == "equivalent":
        missing = sorted(set(claim.metrics) - set(claim.margins))
        if missing:
            out.append(
                f"{where}.margins lacks {missing}: expect=equivalent needs a margin per metric"
            )
    for key in ("requires", "metric_requires"):
        bad = {m: r for m, r in getattr(claim, key).items() if r not in REFERENCE_LEVELS}
        if bad:
            out.append(
                f"{where}.{key}={bad}: each reference must be one of {list(REFERENCE_LEVELS)}"
            )
    stray = sorted(set(claim.metric_requires) - set(claim.metrics) - set(claim.beside))
    if stray:
        out.append(f"{where}.metric_requires names {stray}, which are not its metrics")
    return out


def parse_claims(node: Any) -> list[ClaimConfig]:
    """``report.claims`` (a list of mappings, or null) as :class:`ClaimConfig` entries;
    :class:`ConfigError` naming every problem (``report.claims[0].expect=...: must be ...``)."""
    values = plain_container(node)
    if values is None:
        return []
    if not isinstance(values, list):
        raise ConfigError(f"report.claims={show_value(values)}: must be a list of claims")
    problems: list[str] = []
    claims = []
    for i, entry in enumerate(values):
        where = f"report.claims[{i}]"
        claim = checked_dataclass(ClaimConfig, entry, where, problems)
        if claim is not None:
            problems += _problems(claim, where)
            claims.append(claim)
    if problems:
        raise ConfigError("; ".join(problems))
    return claims


def margins_are_positive(report: Any, group: str) -> list[str]:
    """``report.margin``: a number > 0 for every verdict metric, or ``{metric: number > 0}``."""
    margin = report.margin
    values = margin.values() if isinstance(margin, dict) else [margin]
    if margin is None or all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values
    ):
        return []
    return [
        f"{group}.margin={margin}: must be a number > 0 or a mapping {{metric: number > 0}}, "
        "e.g. report.margin=0.02 or +report.margin.cloze_acc=0.01"
    ]
