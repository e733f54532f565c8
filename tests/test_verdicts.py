"""Verdict categories on constructed comparisons: better / worse (at every size), crosses,
pooled with a trend, equivalent, inconclusive with the detectable effect and the seeds the
margin needs, trade-offs from diverged runs, the family adjustment, fragile calls, and the
stability test's place in the family."""

from __future__ import annotations

import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from glmlab.report.family import Family
from glmlab.report.power import mde
from glmlab.report.stability import RunCount, count_runs, divergence_interval, stability_test
from glmlab.report.stats import PAIRED, Components, Diff
from glmlab.report.verdicts import Rung, judge, key, register, register_stability

FULL = RunCount(3, 3, 0)


def diff(est: float, se: float, df: float = 4.0, comp: Components | None = None) -> Diff:
    half = float(sps.t.ppf(0.975, df)) * se
    p = float(2 * sps.t.sf(abs(est) / se, df))
    return Diff(est, se, df, est - half, est + half, p, PAIRED, (3, 3), 128, comp)


def verdict_of(rungs, *, margin=None, stability=None, others=(), **kw):
    """Register ``rungs`` (and ``others``: more (variant, rungs) in the same family),
    adjust, judge the first: lower is better, as for a loss."""
    family = Family()
    register(family, "v", "loss", rungs, margin)
    for label, more in others:
        register(family, label, "loss", more, margin)
    if stability is not None:
        register_stability(family, "v", stability)
    family.adjust()
    out = judge(
        family, "v", "loss", rungs, higher_is_better=False, margin=margin, stability=stability, **kw
    )
    return out, family


def sweep(d: Diff | None, variant: RunCount = FULL, baseline: RunCount = FULL) -> list[Rung]:
    return [Rung("", None, d, variant, baseline)]


def ladder(*diffs: Diff | None) -> list[Rung]:
    names, computes = ("s", "m", "l"), (1e15, 1e16, 1e17)
    return [Rung(n, c, d, FULL, FULL) for n, c, d in zip(names, computes, diffs, strict=True)]


def test_sweep_better_worse_and_equivalent():
    v, _ = verdict_of(sweep(diff(-0.1, 0.02, 10)))
    assert (v.kind, v.direction) == ("better", 1)
    assert v.text.startswith("better: -0.1000 [") and "p = " in v.text
    v, _ = verdict_of(sweep(diff(+0.1, 0.02, 10)))
    assert (v.kind, v.direction) == ("worse", -1)
    v, family = verdict_of(sweep(diff(0.001, 0.002, 20)), margin=0.02)
    assert v.kind == "equivalent" and "equivalent within ±0.02" in v.text
    assert len(family) == 2  # the difference and the equivalence test


def test_inconclusive_names_the_detectable_effect_and_the_seeds_the_margin_needs():
    comp = Components(seed=0.004, item=0.0, noise=0.1, n_items=128)
    d = diff(0.02, 0.05, 2.0, comp)
    v, _ = verdict_of(sweep(d), margin=0.05)
    assert v.kind == "inconclusive" and v.text.startswith("inconclusive: +0.0200 [")
    # At the family's Bonferroni level (2 tests: difference, equivalence).
    assert v.mde == pytest.approx(mde(0.05, 2.0, 0.05 / 2))
    assert v.seeds_needed is not None and v.seeds_needed > 3
    assert f"needs {v.seeds_needed} seeds per arm" in v.text
    assert "detectable at 80% power (level 0.05/2) here: ±" in v.text


def test_ladder_better_at_every_size_only_when_every_rung_has_a_comparison():
    v, _ = verdict_of(ladder(diff(-0.2, 0.02), diff(-0.2, 0.02), diff(-0.2, 0.02)))
    assert v.kind == "better" and v.text.startswith("better at every size (s, m, l)")
    assert "no significant trend" in v.text
    v, _ = verdict_of(ladder(diff(-0.2, 0.02), diff(-0.2, 0.02), None))
    assert v.kind == "better"
    assert "better at every compared size (s, m); no comparison at l" in v.text
    assert "at every size" not in v.text


def test_pooled_same_direction_with_a_shrinking_gap():
    # Significant at s and m, not at l; the gap shrinks by ~0.1 per decade of compute.
    v, family = verdict_of(ladder(diff(-0.2, 0.02), diff(-0.1, 0.02), diff(-0.01, 0.02)))
    assert v.kind == "pooled" and v.direction == 1
    assert v.text.startswith("better on average over the rungs (pooled -0.1033")
    assert "same direction at every compared rung" in v.text
    assert "the gap is shrinking with scale" in v.text
    assert v.trend.estimate == pytest.approx(0.095)
    kinds = sorted(set(family.kinds.values()))
    assert kinds == ["difference", "pooled gap", "trend"]


def test_crosses_over_between_rungs():
    v, _ = verdict_of(
        ladder(diff(-0.2, 0.02), diff(0.0, 0.02), diff(+0.2, 0.02)),
        meet=lambda lo, hi: 3e16,
    )
    assert v.kind == "crosses" and v.crossover == 3e16
    assert (
        "crosses over near C* = 3e+16 FLOPs (where the fitted curves meet): better at s, the opposite at l"
        in v.text
    )
    v, _ = verdict_of(ladder(diff(-0.2, 0.02), diff(0.0, 0.02), diff(+0.2, 0.02)))
    assert v.crossover == pytest.approx(1e16) and "(between the rungs)" in v.text


def test_inconclusive_ladder_says_where_it_was_significant():
    v, _ = verdict_of(ladder(diff(-0.3, 0.03), diff(0.05, 0.1), diff(0.1, 0.1)))
    assert v.kind == "inconclusive"
    assert "better at s only" in v.text and "no significant difference at m, l" in v.text


def test_a_diverged_seed_turns_better_into_a_trade_off():
    d = diff(-0.1, 0.02, 10)
    v, _ = verdict_of(sweep(d), stability=stability_test(FULL, FULL))
    assert v.kind == "better"
    unstable = RunCount(3, 2, 1)
    s = stability_test(unstable, FULL)
    v, family = verdict_of(sweep(d, unstable), stability=s)
    assert v.kind == "trade-off" and v.direction == 1
    assert "but the variant diverged more often" in v.text
    assert "judged on 2 of 3 seeds (1 diverged) vs baseline 3 of 3 seeds" in v.text
    assert "diverged 1 of 3 [1%, 91%] vs baseline 0 of 3 [0%, 71%]" in v.text
    # 3 runs an arm: even 3 of 3 against 0 of 3 (p = 0.031) cannot pass 0.05 / 2.
    assert key("v", "", "", "stability") not in family
    # The baseline diverging instead: the better arm is also the stable one.
    v, _ = verdict_of(sweep(d, FULL, unstable), stability=stability_test(FULL, unstable))
    assert v.kind == "better"


def test_stability_counts_intervals_and_tarone_inclusion():
    c = count_runs(["completed", "diverged", "failed", "completed"])
    assert (c.total, c.completed, c.diverged, c.missing) == (4, 2, 1, 1)
    assert c.phrase() == "2 of 4 seeds (1 diverged, 1 failed or unfinished)"
    low, high = divergence_interval(RunCount(3, 2, 1))
    assert (low, high) == (pytest.approx(0.0084038, abs=1e-6), pytest.approx(0.9057007, abs=1e-6))
    s = stability_test(RunCount(9, 3, 6), RunCount(9, 9, 0))
    assert s.p == pytest.approx(
        sps.boschloo_exact([[6, 0], [3, 9]], alternative="two-sided").pvalue
    )
    family = Family()
    assert register_stability(family, "v", s) and len(family) == 1  # min p ~ 4e-6
    # 3 runs an arm: the smallest attainable p (0.031) passes 0.05 alone, not 0.05 / 2.
    small = stability_test(FULL, RunCount(3, 2, 1))
    assert small.min_p == pytest.approx(0.03125)
    assert register_stability(Family(), "v", small)
    family = Family()
    family.add("another test", 0.5, "difference")
    assert not register_stability(family, "v", small)


def test_one_family_adjusts_every_test_by_holm():
    # Alone, p = 0.03 is significant; in a family with four other comparisons, it is not.
    d = diff(-0.1, 0.038, 8)
    assert 0.02 < d.p < 0.04
    alone, _ = verdict_of(sweep(d))
    assert alone.kind == "better"
    noise = [(f"w{i}", sweep(diff(0.01, 0.1, 8))) for i in range(4)]
    crowded, family = verdict_of(sweep(d), others=noise)
    assert crowded.kind == "inconclusive" and len(family) == 5
    expected = multipletests([d.p] + [noise[0][1][0].diff.p] * 4, method="holm")[1][0]
    assert family.p(key("v", "loss", "", "difference")) == pytest.approx(expected)
    assert f"p = {expected:.3g} (adjusted; raw {d.p:.3g})" in crowded.text
    assert "one family of 5 tests (5 difference)" in family.describe()
    with pytest.raises(ValueError, match="already in the family"):
        family.add(key("v", "loss", "", "difference"), 0.5, "difference")


def test_fragile_calls_and_marks():
    near = diff(-0.1, 0.043, 30)  # p ~ 0.027: within 0.6 standard errors of 0.05
    v, _ = verdict_of(sweep(near))
    assert v.kind == "better" and v.fragile and "(fragile: p = " in v.text
    v, _ = verdict_of(sweep(diff(-0.1, 0.01, 30)))
    assert not v.fragile
    behind = [Rung("", None, diff(-0.1, 0.01, 30), FULL, FULL, ("v (unigram)",))]
    v, _ = verdict_of(behind, grid_edge=["v @ s"])
    assert "⚠ not past the trivial reference: v (unigram)" in v.text
    assert "⚠ lr optimum at the grid's edge: v @ s" in v.text
    assert verdict_of(sweep(None))[0].kind == "no comparison"
