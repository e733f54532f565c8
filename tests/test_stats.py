"""Report statistics: the level and coverage of the tests on simulated sweeps (where the
previous bootstrap failed), the seeds-only paths against scipy and statsmodels, variance
components by hand, power and equivalence against statsmodels, pooled gaps and trends."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from benchmarks.calibration import REGIMES, Regime, arms_for, legacy_bootstrap_p, simulate
from glmlab.report.power import mde, pooled, power_at, seeds_needed, tost_p, trend
from glmlab.report.stats import (
    PAIRED,
    SEEDS_PAIRED,
    SEEDS_WELCH,
    UNPAIRED,
    Arm,
    Components,
    Diff,
    RunItems,
    arm_estimate,
    compare_arms,
    summary_stats,
)

SEED_DOMINATED = Regime("seed-dominated", seed_sd=0.10, noise_sd=0.05, interaction_sd=0.02)
ITEM_DOMINATED = Regime("item-dominated", seed_sd=0.005, noise_sd=0.2, interaction_sd=0.1)


def test_paired_test_holds_its_level_with_3_seeds_where_the_old_bootstrap_did_not():
    # 400 null sweeps, 3 seeds, seed-to-seed spread dominating (issue #29): the binomial
    # standard error of a 5% rate is 1.1%, so 0.025-0.08 is about -2 to +3 of them.
    rng = np.random.default_rng(11)
    new = old = 0
    for k in range(400):
        v, b, _ = simulate(rng, SEED_DOMINATED, 3)
        new += compare_arms(*arms_for("paired", v, b)).p < 0.05
        old += legacy_bootstrap_p(v, b, n_boot=500, seed=k) < 0.05
    assert 0.025 <= new / 400 <= 0.08
    assert old / 400 > 0.08  # the percentile bootstrap is a z test on 2 df: ~0.12


@pytest.mark.parametrize("regime", [ITEM_DOMINATED, REGIMES[0]], ids=["items", "measured"])
def test_interval_covers_the_true_difference(regime):
    rng = np.random.default_rng(5)
    hits = arm_hits = 0
    for _ in range(300):
        v, b, _ = simulate(rng, regime, 3, effect=0.05)
        d = compare_arms(*arms_for("paired", v, b))
        hits += d.low <= 0.05 <= d.high
        est = arm_estimate(arms_for("paired", v, b)[1])
        arm_hits += est.low <= 5.0 <= est.high
    # 300 sweeps: the binomial standard error of a 95% coverage is 1.3%.
    assert 0.92 <= hits / 300 <= 0.985
    assert 0.90 <= arm_hits / 300 <= 0.985  # 0.942 in 2000 sweeps (measured regime)


def test_paths_by_what_the_runs_share():
    rng = np.random.default_rng(1)
    v, b, _ = simulate(rng, REGIMES[0], 3)
    assert compare_arms(*arms_for("paired", v, b)).method == PAIRED
    unpaired = compare_arms(*arms_for("unpaired", v, b))  # the variant lost a seed
    assert unpaired.method == UNPAIRED and unpaired.n_runs == (2, 3)
    assert compare_arms(*arms_for("seeds only", v, b)).method == SEEDS_PAIRED
    # The same numbers for the same runs: nothing random in the report's statistics.
    assert compare_arms(*arms_for("paired", v, b)) == compare_arms(*arms_for("paired", v, b))
    # Seeds listed in another order are matched by seed, not by position.
    va, ba = arms_for("paired", v, b)
    order = [2, 0, 1]
    shuffled = Arm(
        tuple(va.values[i] for i in order),
        tuple(va.seeds[i] for i in order),
        RunItems(va.items.num[order], va.items.den[order]),
    )
    assert compare_arms(shuffled, ba).p == pytest.approx(compare_arms(va, ba).p, rel=1e-9)
    with pytest.raises(ValueError, match="same items"):
        compare_arms(va, Arm(ba.values, ba.seeds, RunItems(np.ones((3, 4)), np.ones((3, 4)))))
    assert compare_arms(Arm((1.0,), (0,)), Arm((1.0, 2.0), (0, 1))) is None


def test_seeds_only_paths_are_scipys_paired_t_and_welch():
    a, b = (5.5, 5.61, 5.7), (5.0, 5.2, 5.4)
    d = compare_arms(Arm(a, (0, 1, 2)), Arm(b, (0, 1, 2)))
    ref = sps.ttest_rel(a, b)
    assert d.method == SEEDS_PAIRED and d.df == 2
    assert d.t == pytest.approx(ref.statistic) and d.p == pytest.approx(ref.pvalue)
    w = compare_arms(Arm(a, (0, 1, 2)), Arm(b, (3, 4, 5)))
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w.method == SEEDS_WELCH
    assert w.p == pytest.approx(ref.pvalue) and w.df == pytest.approx(ref.df)
    low, high = ref.confidence_interval()
    assert (w.low, w.high) == (pytest.approx(low), pytest.approx(high))


def test_variance_components_by_hand():
    # d[s, i] = variant - baseline per seed and item (one token per item: no weights).
    d = np.array([[0.1, 0.3, 0.2, 0.6], [0.0, 0.1, 0.1, 0.2], [0.3, 0.5, 0.2, 0.4]])
    n, m = d.shape
    rows, cols, g = d.mean(1), d.mean(0), d.mean()
    ms_seed = m * ((rows - g) ** 2).sum() / (n - 1)
    ms_item = n * ((cols - g) ** 2).sum() / (m - 1)
    ms_res = ((d - rows[:, None] - cols + g) ** 2).sum() / ((n - 1) * (m - 1))
    assert ms_item > ms_res  # the item part is positive here
    var = (ms_seed + ms_item - ms_res) / (n * m)
    # Satterthwaite's df, the seed term at its 70% upper bound (seed MS x 2 / chi2(0.3; 2)).
    guarded = ms_seed * (n - 1) / sps.chi2.ppf(0.3, n - 1)
    df = ((guarded + ms_item - ms_res) / (n * m)) ** 2 / (
        ((guarded / (n * m)) ** 2 / (n - 1))
        + ((ms_item / (n * m)) ** 2 / (m - 1))
        + ((ms_res / (n * m)) ** 2 / ((n - 1) * (m - 1)))
    )
    df = max(df, n - 1)
    base = np.full((n, m), 5.0)
    ones = np.ones((n, m))
    variant = Arm(tuple((5.0 + d).mean(1)), (0, 1, 2), RunItems(5.0 + d, ones))
    baseline = Arm(tuple(base.mean(1)), (0, 1, 2), RunItems(base, ones))
    out = compare_arms(variant, baseline)
    assert out.diff == pytest.approx(g)
    assert out.se == pytest.approx(math.sqrt(var)) and out.df == pytest.approx(df)
    assert out.p == pytest.approx(2 * sps.t.sf(g / math.sqrt(var), df))
    comp = out.components
    assert comp.seed == pytest.approx(max(0.0, (ms_seed - ms_res) / m))
    assert comp.item == pytest.approx((ms_item - ms_res) / n) and comp.noise == pytest.approx(
        ms_res
    )
    assert comp.variance(n) == pytest.approx(var)


def test_arm_interval_needs_two_runs_and_matches_t_over_seeds():
    s = summary_stats([5.0, 5.2, 5.4])
    half = 4.302653 * 0.2 / math.sqrt(3)  # t(0.975, 2) from any table
    assert s.ci == (pytest.approx(5.2 - half, abs=1e-5), pytest.approx(5.2 + half, abs=1e-5))
    est = arm_estimate(Arm((5.0, 5.2, 5.4), (0, 1, 2)))
    assert (est.low, est.high) == (pytest.approx(s.ci[0]), pytest.approx(s.ci[1]))
    one = arm_estimate(Arm((5.0,), (0,), RunItems(np.ones((1, 5)), np.ones((1, 5)))))
    assert one.estimate == 5.0 and one.low is None  # one run: its seed part is unknown
    assert arm_estimate(Arm(())) is None


def test_equivalence_is_statsmodels_ttost_on_seeds():
    a, b = (5.01, 5.03, 4.99, 5.02), (5.0, 5.01, 5.0, 5.0)
    d = compare_arms(Arm(a, (0, 1, 2, 3)), Arm(b, (0, 1, 2, 3)))
    assert tost_p(d, 0.05) == pytest.approx(ttost_paired(np.array(a), np.array(b), -0.05, 0.05)[0])
    assert tost_p(d, 0.05) < 0.05 < tost_p(d, 0.01)
    with pytest.raises(ValueError, match="margin must be > 0"):
        tost_p(d, 0.0)


def test_minimum_detectable_effect_and_seeds_match_statsmodels_power():
    sd, n = 0.1, 3  # a paired t over 3 seed differences of sd 0.1
    effect_size = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
    assert mde(sd / math.sqrt(n), n - 1) == pytest.approx(effect_size * sd, rel=1e-3)
    assert power_at(effect_size * sd, sd / math.sqrt(n), n - 1) == pytest.approx(0.8, abs=1e-3)
    comp = Components(sd**2, 0.0, 0.0, 1)  # seeds only: variance sd^2 / n, n - 1 df
    need = seeds_needed(comp, 0.05)
    ref = TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8)
    assert need == math.ceil(ref)
    # An item part that more seeds never shrink: the margin may be out of reach.
    assert seeds_needed(Components(sd**2, 0.01, 0.0, 100), 0.01) is None


def _diff(est: float, se: float, df: float = 4.0) -> Diff:
    low, high = est - 2.776 * se, est + 2.776 * se
    return Diff(est, se, df, low, high, float(2 * sps.t.sf(abs(est) / se, df)), PAIRED, (3, 3))


def test_pooled_gap_and_trend_by_hand():
    diffs = [_diff(-0.3, 0.1), _diff(-0.2, 0.1), _diff(-0.1, 0.2)]
    p = pooled(diffs)
    assert p.estimate == pytest.approx(-0.2)
    assert p.se == pytest.approx(math.sqrt(0.01 + 0.01 + 0.04) / 3)
    assert p.df == pytest.approx(0.06**2 / ((0.01**2 + 0.01**2 + 0.04**2) / 4))
    # log10 compute 15, 16, 17: slope of the gaps = (-0.1 - -0.3) / 2 per decade.
    tr = trend(diffs, [1e15, 1e16, 1e17])
    assert tr.estimate == pytest.approx(0.1)
    assert tr.se == pytest.approx(math.sqrt(0.25 * 0.01 + 0.25 * 0.04))
    assert trend(diffs[:1], [1e15]) is None
