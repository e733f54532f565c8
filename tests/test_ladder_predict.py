"""A ladder's predictions (#30): fits that say what the points support, t intervals that
cover at the stated rate (a small version of benchmarks/ladder_prediction.py), accuracy
through loss, the compute-equivalent multiplier, the lr read off the grid, and the ladder
file's new settings checked before any run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.ladder_prediction import run as simulate
from glmlab.config.ladder import ladder_settings
from glmlab.config.rules import ConfigError
from glmlab.ladder.fit import fit_power_laws
from glmlab.ladder.link import fit_link
from glmlab.ladder.lr import GridPoint, choose_lr
from glmlab.ladder.predict import (
    Selection,
    multiplier,
    refit_seeds,
    select_fit,
    value_estimate,
)
from glmlab.ladder.spec import build_plan
from tests.test_ladder import BASE, GOOD, points, synthetic

COMPUTES = [1e12 * 2**k for k in range(4)]


# -- what the points support -----------------------------------------------------------


def test_three_rungs_never_determine_a_form_with_e():
    """Two variants x 3 rungs: E per variant or shared leaves < 2 residual df; auto says
    so and falls back to the pure power law, which the points do determine."""
    cells = synthetic({"a": (1.0, 60.0, 0.09), "b": (1.0, 58.0, 0.09)}, COMPUTES[:3], seeds=3)
    sel = select_fit(cells, "auto")
    assert sel.fit.mode == "log" and sel.determined
    assert "own_e" in sel.tried and "shared_e" in sel.tried
    named = select_fit(cells, "shared_e")
    assert not named.determined and named.supported == "log"
    assert "1 residual degrees of freedom" in named.why_not()


def test_flat_points_support_no_fit():
    """No trend in compute: the pure power law's alpha interval reaches its bound, and
    auto reports no fit instead of extrapolating."""
    rng = np.random.default_rng(1)
    cells = {v: {c: list(5.0 + rng.normal(0, 0.05, 3)) for c in COMPUTES[:3]} for v in "ab"}
    sel = select_fit(cells, "auto")
    assert sel.fit is None and "log" in sel.tried


def test_refits_at_a_bound_are_counted_and_make_the_fit_undetermined():
    """A saturating fit whose E the seeds cannot pin (the truth's E is 0): seed-resample
    refits that put E at its bound are counted, said in the report's words, and more
    than 2.5% of them leave even a fit whose own point estimate passed undetermined."""
    cells = synthetic({"a": (0.0, 60.0, 0.1), "b": (0.0, 58.0, 0.1)}, COMPUTES, seeds=3, noise=0.03)
    refits = refit_seeds(cells, "own_e", n=40)
    assert refits.n == 40 and refits.at_bound > 1 and refits.loose
    assert f"{refits.failed + refits.at_bound} of 40 seed-resample refits" in refits.text()
    point = fit_power_laws(points(cells), "log")
    assert point.determined
    judged = Selection(point, "log", refits)
    assert not judged.determined and "refits failed or hit a bound" in judged.why_not()


# -- predictions and their intervals ---------------------------------------------------


def test_held_out_rung_predicted_within_its_interval_at_the_stated_rate():
    """120 simulated ladders whose truth is the fitted form: the held-out rung's measured
    means fall inside their 95% prediction intervals 88-100% of the time (the full run,
    500 ladders, is benchmarks/ladder_prediction.py; its table is in docs/LADDERS.md).
    Without the held-out runs' own noise in the interval the rate falls far below."""
    tally = simulate("power", 120, 3, 0, seed=7)
    assert tally.no_prediction == 0
    assert 0.88 <= tally.value_covered / tally.value_checks <= 1.0
    assert 0.85 <= tally.gap_covered / tally.gap_checks <= 1.0


def test_prediction_interval_includes_the_runs_noise():
    cells = synthetic({"a": (0.0, 60.0, 0.09)}, COMPUTES[:3], seeds=3, noise=0.03)
    fit = select_fit(cells, "log").fit
    curve_only = value_estimate(fit, "a", COMPUTES[3])
    measured = value_estimate(fit, "a", COMPUTES[3], runs=3)
    assert measured.half > curve_only.half > 0
    assert measured.se**2 == pytest.approx(curve_only.se**2 + fit.run_var("a", COMPUTES[3]) / 3)


def test_compute_equivalent_multiplier_recovers_the_known_factor():
    """Pure power laws with one alpha: the variant's A 3% below the baseline's makes the
    variant at C equal to the baseline at 0.97^(-1/alpha) x C."""
    alpha = 0.09
    cells = synthetic(
        {"b": (0.0, 60.0, alpha), "v": (0.0, 58.2, alpha)}, COMPUTES, seeds=5, noise=0.002
    )
    fit = select_fit(cells, "log").fit
    k = multiplier(fit, "v", "b", COMPUTES[-1])
    assert math.exp(k.value) == pytest.approx(0.97 ** (-1 / alpha), rel=0.05)
    assert math.exp(k.low) < 0.97 ** (-1 / alpha) < math.exp(k.high)


def test_loss_to_accuracy_map_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    loss = rng.uniform(3.5, 6.0, 60)
    acc = 0.25 + 0.75 / (1 + np.exp(2.0 * (loss - 4.8))) + rng.normal(0, 0.02, 60)
    link = fit_link(loss, acc, 0.25)
    assert link.determined, link.note
    assert link.k == pytest.approx(2.0, rel=0.1) and link.l0 == pytest.approx(4.8, abs=0.05)
    flat = fit_link([5.0, 5.0, 5.0, 5.0], [0.3, 0.31, 0.29, 0.3], 0.25)
    assert not flat.determined and "too few" in flat.note


def test_accuracy_fitted_as_an_error_rate_still_predicts_in_its_own_terms():
    err = synthetic({"v": (0.0, 300.0, 0.1)}, COMPUTES, noise=0.001)
    acc = {v: {c: [1 - y for y in ys] for c, ys in byc.items()} for v, byc in err.items()}
    fit = fit_power_laws(points(acc), "log", flip=True)
    assert fit.predict("v", 3e12) == pytest.approx(1 - 300.0 * 3e12**-0.1, abs=0.005)


# -- the lr read off the grid ----------------------------------------------------------


def test_lr_fit_is_the_parabola_minimum_in_log_lr():
    """Losses quadratic in log lr around 2e-3: the vertex is found between grid points."""
    grid = [1e-3, 3e-3, 1e-2]
    pts = [GridPoint(lr, "completed", 4.0 + 0.2 * math.log(lr / 2e-3) ** 2) for lr in grid]
    chosen = choose_lr(pts, "fit")
    assert chosen.fitted and chosen.lr == pytest.approx(2e-3, rel=0.01) and chosen.grid_best == 3e-3
    assert choose_lr(pts, "best").lr == 3e-3
    edge = [GridPoint(lr, "completed", 4.0 + 0.2 * math.log(lr / 3e-4) ** 2) for lr in grid]
    at_edge = choose_lr(edge, "fit")
    assert at_edge.lr == 1e-3 and not at_edge.fitted and at_edge.at_edge == "low"


def test_several_tuning_seeds_average_and_a_failed_seed_loses_its_lr():
    a = GridPoint.combine(
        1e-3, [GridPoint(1e-3, "completed", 4.0), GridPoint(1e-3, "completed", 4.2)]
    )
    assert a.usable and a.val_loss == pytest.approx(4.1) and a.seeds == 2
    b = GridPoint.combine(
        3e-3, [GridPoint(3e-3, "completed", 3.0), GridPoint(3e-3, "diverged", None)]
    )
    assert not b.usable and b.status == "diverged (1 of 2 seeds)"


# -- the ladder file ---------------------------------------------------------------------

FOUR = [*GOOD["rungs"], {"n_layers": 3, "dim": 64, "n_heads": 4}]


def plan(**changes):
    return build_plan(ladder_settings({**GOOD, **changes}), BASE, [["a=1"], ["a=2"]], [0, 1, 2])


@pytest.mark.parametrize(
    ("changes", "fix"),
    [
        (
            {"holdout": "last"},
            "ladder.holdout=last needs at least 4 rungs (3 to fit, 1 to predict)",
        ),
        ({"budget_axis": [20]}, "has one value: list at least 2 tokens-per-parameter ratios"),
        ({"budget_axis": [5, 40]}, "lacks tokens_per_param=20"),
        ({"holdout": "first"}, "ladder.holdout=first"),
        ({"tuning_seeds": 3, "tuning_seed": 0}, "uses the verdict seeds 0, 1, 2"),
    ],
)
def test_bad_new_settings_fail_in_one_line_naming_the_fix(changes, fix):
    with pytest.raises(ConfigError) as err:
        plan(**changes)
    assert fix in str(err.value) and "\n" not in str(err.value)


def test_budget_axis_adds_each_rung_at_each_ratio_and_depth_may_grow():
    p = plan(rungs=FOUR, holdout="last", budget_axis=[10, 20], tuning_seeds=2)
    assert [r.name for r in p.ladder_rungs()] == ["2x32", "2x48", "2x64", "3x64"]
    assert [r.name for r in p.rungs if r.ratio == 10] == [
        "2x32@10",
        "2x48@10",
        "2x64@10",
        "3x64@10",
    ]
    for r in p.rungs:
        assert r.steps == round(r.ratio * r.params / (16 * 128))
    assert p.held_out().name == "3x64" and [r.name for r in p.fit_rungs()] == [
        "2x32",
        "2x48",
        "2x64",
    ]
    assert p.grid_seeds() == [100, 101]
    assert len(p.grid_jobs()) == 2 * 8 * 3 * 2


def test_deepnorm_constants_follow_each_rungs_depth():
    """A rung that grows depth builds DeepNorm with its own n_layers: alpha = (2N)^1/2."""
    from glmlab.assembly.model import build_glm_model
    from glmlab.cli.inspect import compose_config
    from glmlab.config.spec import parse_config

    for rung in plan(rungs=FOUR).rungs[-2:]:
        cfg = compose_config(["norm_layout=deepnorm", *rung.overrides()])
        model = build_glm_model(parse_config(cfg), 1024, "cpu")
        assert len(model.blocks) == rung.n_layers
        for block in model.blocks:
            assert block.attn.alpha == pytest.approx((2 * rung.n_layers) ** 0.5)
            assert block.mlp.alpha == pytest.approx((2 * rung.n_layers) ** 0.5)
