"""Report statistics: the paired hierarchical bootstrap's coverage by simulation, Holm's
adjustment and the seeds-only fallback against scipy and statistics tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from glmlab.report.stats import (
    RunItems,
    bootstrap_mean,
    holm,
    paired_bootstrap,
    seed_scale,
    summary_stats,
    welch_test,
)

TRUE_DIFF = 0.1


def simulated_sweep(
    rng: np.random.Generator,
    *,
    seed_sd: float,
    interaction_sd: float = 0.1,
    noise_sd: float = 0.5,
    runs: int = 3,
    items: int = 64,
) -> tuple[RunItems, RunItems]:
    """A variant and a baseline scored by 3 seeds each on the same fresh items: a per-token
    loss = variant mean + item difficulty (shared) + item-by-variant interaction + seed
    effect + token noise; items hold 1-6 tokens. The true difference is TRUE_DIFF."""
    difficulty = rng.normal(0.0, 0.5, items)
    tokens = rng.integers(1, 7, items).astype(np.float64)

    def variant(mean: float) -> RunItems:
        interaction = rng.normal(0.0, interaction_sd, items)
        rows = []
        for _ in range(runs):
            per_token = (
                mean
                + difficulty
                + interaction
                + rng.normal(0.0, seed_sd)
                + rng.normal(0.0, noise_sd, items) / np.sqrt(tokens)
            )
            rows.append((per_token * tokens, tokens))
        return RunItems.from_runs(rows)

    return variant(5.0 + TRUE_DIFF), variant(5.0)


def cloze_sweep(rng: np.random.Generator, items: int = 64) -> tuple[RunItems, RunItems]:
    """0/1 cloze credit: item easiness shared, each run answers right with its probability."""
    easiness = rng.normal(0.0, 1.0, items)

    def variant(shift: float) -> RunItems:
        rows = []
        for _ in range(3):
            p = 1.0 / (1.0 + np.exp(-(easiness + shift + rng.normal(0.0, 0.1))))
            rows.append(((rng.random(items) < p).astype(np.float64), np.ones(items)))
        return RunItems.from_runs(rows)

    return variant(0.5), variant(0.0)


@pytest.mark.parametrize("seed_sd", [0.0, 0.03, 0.06])
def test_paired_interval_covers_the_true_difference_95_percent_of_the_time(seed_sd):
    rng = np.random.default_rng(7)
    n_sweeps = 300
    hits = 0
    for k in range(n_sweeps):
        variant, baseline = simulated_sweep(rng, seed_sd=seed_sd)
        d = paired_bootstrap(variant, baseline, n_boot=1000, seed=k)
        hits += d.low <= TRUE_DIFF <= d.high
    # 300 sweeps: the binomial standard error of a 95% coverage is 1.3%.
    assert 0.91 <= hits / n_sweeps <= 0.985


def test_cloze_interval_coverage_for_zero_one_credit():
    # The population difference: the mean over item easiness of the two answer
    # probabilities (the seed effect, sd 0.1 on the logit scale, changes it by < 0.001).
    easiness = np.random.default_rng(99).normal(0.0, 1.0, 1_000_000)
    truth = float(np.mean(1 / (1 + np.exp(-(easiness + 0.5))) - 1 / (1 + np.exp(-easiness))))
    rng = np.random.default_rng(3)
    n_sweeps = 300
    hits = sum(
        (d := paired_bootstrap(*cloze_sweep(rng), n_boot=1000, seed=k)).low <= truth <= d.high
        for k in range(n_sweeps)
    )
    assert 0.91 <= hits / n_sweeps <= 0.985


def test_single_variant_interval_covers_its_mean():
    rng = np.random.default_rng(11)
    hits = 0
    for k in range(300):
        _, baseline = simulated_sweep(rng, seed_sd=0.03)
        m = bootstrap_mean(baseline, n_boot=1000, seed=k)
        hits += m.low <= 5.0 <= m.high
    assert 0.91 <= hits / 300 <= 0.985


def test_pairing_by_item_narrows_the_interval():
    # Item difficulty dominates: unpaired (items resampled per side), the interval would
    # be several times wider. Pairing removes the shared difficulty.
    rng = np.random.default_rng(5)
    variant, baseline = simulated_sweep(rng, seed_sd=0.0, interaction_sd=0.0, noise_sd=0.05)
    d = paired_bootstrap(variant, baseline)
    assert d.low > 0.0 and d.high - d.low < 0.05
    assert d.p < 0.001 and d.significant


def test_bootstrap_is_reproducible_and_seed_scale_removes_item_noise():
    rng = np.random.default_rng(2)
    variant, baseline = simulated_sweep(rng, seed_sd=0.0)
    assert paired_bootstrap(variant, baseline) == paired_bootstrap(variant, baseline)
    # No seed effect: the run values differ by item noise only, so little seed part.
    assert seed_scale(baseline) < 0.6
    variant, baseline = simulated_sweep(np.random.default_rng(2), seed_sd=1.0)
    assert seed_scale(baseline) == pytest.approx(math.sqrt(3 / 2), rel=0.05)


def test_paired_bootstrap_needs_the_same_items():
    a = RunItems(np.ones((2, 3)), np.ones((2, 3)))
    b = RunItems(np.ones((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="runs, items"):
        RunItems(np.ones(3), np.ones(3))


def test_holm_by_hand():
    # Sorted p: 0.01 * 3, 0.02 * 2, 0.04 * 1 -> 0.03, 0.04, 0.04 (monotone).
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_describe_and_welch_against_scipy():
    s = summary_stats([5.0, 5.2, 5.4])
    half = 4.302653 * 0.2 / math.sqrt(3)  # t(0.975, 2) from any table
    assert s.ci == (pytest.approx(5.2 - half, abs=1e-5), pytest.approx(5.2 + half, abs=1e-5))
    a, b = [5.5, 5.6, 5.7], [5.0, 5.2, 5.4]
    w = welch_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w.t == pytest.approx(ref.statistic) and w.p == pytest.approx(ref.pvalue)
    assert welch_test([1.0], [2.0, 3.0]) is None
