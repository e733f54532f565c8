"""glmlab/ladder/: compute counting, the ladder file's checks, lr selection, power-law
fits and verdicts across scale (docs/LADDERS.md). The end-to-end tiny ladder is in
tests/test_ladder_sweep.py (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glmlab.config.ladder import ladder_settings
from glmlab.config.rules import ConfigError
from glmlab.ladder.compute import ModelShape, non_embedding_params, training_compute
from glmlab.ladder.fit import crossover, fit_power_laws
from glmlab.ladder.lr import GridPoint, choose_lr
from glmlab.ladder.predict import gap_estimate
from glmlab.ladder.spec import build_plan
from glmlab.runs.result import RunResult

BASE = {
    "train.batch_size": 16,
    "train.grad_accum": 1,
    "data.seq_len": 128,
    "train.warmup_steps": 30,
    "model.ffn": "gelu",
    "model.ffn_mult": 4,
}
GOOD = {
    "rungs": [
        {"n_layers": 2, "dim": 32, "n_heads": 4},
        {"n_layers": 2, "dim": 48, "n_heads": 4},
        {"n_layers": 2, "dim": 64, "n_heads": 4},
    ],
    "tokens_per_param": 20,
    "lr_grid": [1e-3, 3e-3, 1e-2],
    "tuning_seed": 100,
}


# -- compute ------------------------------------------------------------------------------


@pytest.mark.parametrize("ffn", ["gelu", "geglu"])
def test_non_embedding_params_match_the_built_model(ffn):
    """N equals the built model's attention and MLP parameters (embeddings, head,
    positional tables and norms left out)."""
    from glmlab.model.glm import MLP, Attention, GLMConfig

    cfg = GLMConfig(vocab_size=300, n_layers=3, dim=48, n_heads=4, max_positions=64, ffn=ffn)
    per_layer = sum(p.numel() for m in (Attention(cfg), MLP(cfg)) for p in m.parameters())
    assert isinstance(per_layer, int) and per_layer > 0
    assert non_embedding_params(ModelShape(3, 48, ffn, 4)) == 3 * per_layer


def test_training_flops_are_6nd_plus_attention():
    shape = ModelShape(2, 64)
    c = training_compute(shape, tokens_per_step=2048, steps=100, seq_len=128)
    n = 2 * (12 * 64 * 64 + 9 * 64)  # 4d^2+4d attention, 8d^2+5d MLP
    assert c.non_embedding_params == n
    assert c.tokens == 204_800
    assert c.flops == pytest.approx(6 * n * 204_800 + 12 * 2 * 64 * 128 * 204_800)


def test_result_json_records_compute(tmp_path):
    """A run's result.json carries the compute record (the hook in glmlab/cli/run.py)."""
    from glmlab.cli.inspect import compose_config
    from glmlab.config.spec import parse_config
    from glmlab.ladder.compute import compute_record

    spec = parse_config(compose_config(["model.dim=32", "model.n_layers=1", "train.max_steps=10"]))
    rec = compute_record(spec, steps=5)
    shape = ModelShape(1, 32)
    assert rec["non_embedding_params"] == non_embedding_params(shape)
    assert rec["tokens"] == 5 * spec.train.batch_size * spec.data.seq_len


# -- the ladder file ----------------------------------------------------------------------


def plan(**changes):
    settings = ladder_settings({**GOOD, **changes})
    return build_plan(
        settings,
        BASE,
        [["objective.shuffle_spans=true"], ["objective.shuffle_spans=false"]],
        [0, 1, 2],
    )


def test_plan_gives_each_rung_steps_by_the_token_rule():
    p = plan()
    assert [r.params for r in p.rungs] == sorted(r.params for r in p.rungs)
    for r in p.rungs:
        assert r.steps == round(20 * r.params / (16 * 128))
        assert r.tokens == r.steps * 16 * 128
    assert len(p.grid_jobs()) == 2 * 3 * 3
    assert all("seed=100" in job[3] for job in p.grid_jobs())
    assert p.fit == "auto"  # the form is chosen by what the points determine (predict.py)
    assert p.target_compute is None  # one rung step past the largest (the report's)


@pytest.mark.parametrize(
    ("changes", "fix"),
    [
        (
            {"rungs": [GOOD["rungs"][1], GOOD["rungs"][0], GOOD["rungs"][2]]},
            "list the rungs from smallest to largest",
        ),
        (
            {"rungs": [*GOOD["rungs"][:2], {"n_layers": 2, "dim": 64, "n_heads": 3}]},
            "ladder.rungs[2].dim=64 must be divisible by ladder.rungs[2].n_heads=3",
        ),
        ({"lr_grid": [3e-3]}, "at least 3 distinct learning rates"),
        ({"lr_grid": [3e-3, 3e-3, 3e-3]}, "at least 3 distinct learning rates"),
        ({"lr_grid": [1e-3, 2e-3, 1e-1]}, "not log-spaced"),
        ({"tokens_per_param": 0.01}, "raise ladder.tokens_per_param"),
        ({"rungs": GOOD["rungs"][:2]}, "at least 3 model sizes"),
        ({"tuning_seed": 1}, "pick a seed the verdict does not use"),
    ],
)
def test_bad_ladder_files_fail_in_one_line_naming_the_fix(changes, fix):
    with pytest.raises(ConfigError) as err:
        plan(**changes)
    assert fix in str(err.value)
    assert "\n" not in str(err.value)


def test_a_variant_may_not_set_a_ladder_key():
    settings = ladder_settings(GOOD)
    with pytest.raises(ConfigError, match="model.dim=128"):
        build_plan(settings, BASE, [["model.dim=128"]], [0, 1])
    with pytest.raises(ConfigError, match="different values"):
        build_plan(
            settings, BASE, [["train.batch_size=8", "a=1"], ["train.batch_size=4", "a=2"]], [0]
        )
    # One value for every variant is fine (the base config then holds it).
    build_plan(
        settings, BASE, [["train.batch_size=16", "a=1"], ["train.batch_size=16", "a=2"]], [0]
    )


# -- learning-rate selection ----------------------------------------------------------------


def grid_results(losses, evals):
    return [
        RunResult(status="completed", final_val_loss=loss, eval={"cloze_acc": acc})
        for loss, acc in zip(losses, evals, strict=True)
    ]


def test_lr_choice_reads_the_validation_loss_only():
    """Perturbing the evaluation suite's numbers (even making another lr look best there)
    leaves the choice unchanged; changing the validation loss moves it."""
    lrs = [1e-3, 3e-3, 1e-2]
    base = grid_results([4.5, 4.2, 4.4], [0.30, 0.31, 0.29])
    chosen = choose_lr([GridPoint.from_result(lr, r) for lr, r in zip(lrs, base, strict=True)])
    assert chosen.lr == 3e-3 and chosen.at_edge is None
    rng = np.random.default_rng(0)
    for _ in range(20):
        perturbed = grid_results([4.5, 4.2, 4.4], rng.uniform(0, 1, 3).tolist())
        again = choose_lr(
            [GridPoint.from_result(lr, r) for lr, r in zip(lrs, perturbed, strict=True)]
        )
        assert again.lr == 3e-3
    moved = grid_results([4.5, 4.6, 4.4], [0.30, 0.31, 0.29])
    assert (
        choose_lr([GridPoint.from_result(lr, r) for lr, r in zip(lrs, moved, strict=True)]).lr
        == 1e-2
    )


@pytest.mark.parametrize(("losses", "edge"), [([4.0, 4.2, 4.4], "low"), ([4.5, 4.2, 4.1], "high")])
def test_grid_edge_warning_fires(losses, edge):
    points = [
        GridPoint(lr, "completed", loss)
        for lr, loss in zip([1e-3, 3e-3, 1e-2], losses, strict=True)
    ]
    chosen = choose_lr(points)
    assert chosen.at_edge == edge
    assert "optimum may lie outside the grid" in chosen.warning


def test_failed_and_diverged_grid_points_lose():
    points = [
        GridPoint(1e-3, "completed", 4.5),
        GridPoint(3e-3, "completed", 4.3),
        GridPoint(1e-2, "diverged", None),
    ]
    chosen = choose_lr(points)
    assert chosen.lr == 3e-3 and "lr 0.01 diverged" in chosen.problem
    assert choose_lr([GridPoint(1e-3, "failed", None)]).lr is None


# -- fits and verdicts ----------------------------------------------------------------------

COMPUTES = [1e12, 4e12, 1.6e13, 6.4e13]


def synthetic(curves, computes, seeds=5, noise=0.01, seed=0):
    """{variant: {C: [values]}} from E + A C^-alpha plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    return {
        v: {c: (e + a * c**-alpha + rng.normal(0, noise, seeds)).tolist() for c in computes}
        for v, (e, a, alpha) in curves.items()
    }


def points(cells):
    return {v: [(c, y) for c, ys in byc.items() for y in ys] for v, byc in cells.items()}


def test_power_law_recovered_with_its_own_e():
    """Six rungs, 1% noise: E within 0.05, alpha within 15%, the curve within 1% over the
    ladder (A trades off against alpha, so it is checked through the curve)."""
    truth = (2.0, 3.0e3, 0.3)
    computes = [1e12 * 4**k for k in range(6)]
    cells = synthetic({"v": truth}, computes, noise=0.005)
    fit = fit_power_laws(points(cells), "own_e")
    curve = fit.curves["v"]
    assert fit.determined, fit.note
    assert curve.E == pytest.approx(truth[0], abs=0.05)
    assert curve.alpha == pytest.approx(truth[2], rel=0.15)
    assert curve.A == pytest.approx(truth[1], rel=0.8)
    for c in computes:
        assert float(curve(c)) == pytest.approx(truth[0] + truth[1] * c ** -truth[2], rel=0.01)


def test_three_rungs_with_shared_e_fit_but_are_not_determined():
    """Three rungs, two variants, E shared: the curves are recovered, but 6 cells for 5
    parameters leave 1 residual degree of freedom: not called determined (nor with E per
    variant: none left)."""
    truths = {"a": (2.0, 3.0e3, 0.3), "b": (2.0, 5.0e3, 0.32)}
    cells = synthetic(truths, COMPUTES[:3], noise=0.002)
    fit = fit_power_laws(points(cells), "shared_e")
    assert not fit.determined and "leave 1 residual degrees of freedom" in fit.note
    for v, (e, a, alpha) in truths.items():
        for c in COMPUTES[:3]:
            assert float(fit.curves[v](c)) == pytest.approx(e + a * c**-alpha, rel=0.005)
    own = fit_power_laws(points(cells), "own_e")
    assert not own.determined and "leave 0 residual degrees of freedom" in own.note


def test_log_space_fit_recovers_a_pure_power_law():
    cells = synthetic({"v": (0.0, 50.0, 0.1)}, COMPUTES, noise=0.0005)
    fit = fit_power_laws(points(cells), "log")
    assert fit.curves["v"].alpha == pytest.approx(0.1, rel=0.05)
    assert fit.curves["v"].A == pytest.approx(50.0, rel=0.3)


def test_gap_interval_covers_the_true_gap():
    truths = {"base": (2.0, 3.0e3, 0.3), "v": (2.0, 3.6e3, 0.3)}
    cells = synthetic(truths, COMPUTES, noise=0.01, seeds=4)
    target = 1e14
    fit = fit_power_laws(points(cells), "shared_e")
    gap = gap_estimate(fit, "v", "base", target)
    true_gap = (3.6e3 - 3.0e3) * target**-0.3
    assert gap.low < gap.high
    assert gap.covers(true_gap)


def ladder_verdict(cells, base, variant, *, higher_is_better, fit=None):
    """The report's verdict across scale (glmlab/report/verdicts.py) on seed-level cells:
    each rung's difference over seeds, one Holm family, then the categories."""
    from glmlab.report.family import Family
    from glmlab.report.stability import RunCount
    from glmlab.report.stats import Arm, compare_arms
    from glmlab.report.verdicts import Rung, judge, register

    rungs = []
    for c in sorted(cells[base]):
        v, b = cells[variant][c], cells[base][c]
        d = compare_arms(Arm(tuple(v), tuple(range(len(v)))), Arm(tuple(b), tuple(range(len(b)))))
        n = RunCount(len(v), len(v), 0)
        rungs.append(Rung(f"{c:.0e}", c, d, n, RunCount(len(b), len(b), 0)))
    family = Family()
    register(family, variant, "loss", rungs, 0.01)
    family.adjust()

    def meet(lo, hi):
        return crossover(fit, variant, base, lo, hi) if fit else None

    return judge(
        family, variant, "loss", rungs, higher_is_better=higher_is_better, margin=0.01, meet=meet
    )


def test_crossover_recovered():
    """Variant better (lower loss) at small compute, worse at large: the verdict says it
    crosses over, near the true C* (within a factor 1.5)."""
    base, var = (2.0, 3.0e3, 0.30), (2.0, 1.2e3, 0.24)
    c_star = (var[1] / base[1]) ** (1 / (var[2] - base[2]))  # where the curves meet
    computes = [c_star / 30, c_star / 5, c_star * 5, c_star * 30]
    cells = synthetic({"base": base, "v": var}, computes, noise=0.002, seeds=5)
    fit = fit_power_laws(points(cells), "own_e")
    v = ladder_verdict(cells, "base", "v", higher_is_better=False, fit=fit)
    assert v.kind == "crosses", v.text
    assert v.crossover == pytest.approx(c_star, rel=0.5)
    assert "(where the fitted curves meet): better at " in v.text and ", the opposite at " in v.text


def test_verdict_better_worse_and_inconclusive():
    base = (2.0, 3.0e3, 0.3)
    cells = synthetic({"base": base, "v": (2.0, 2.0e3, 0.3)}, COMPUTES, noise=0.002)
    better = ladder_verdict(cells, "base", "v", higher_is_better=False)
    assert better.kind == "better" and better.text.startswith("better at every size")
    assert ladder_verdict(cells, "base", "v", higher_is_better=True).kind == "worse"
    same = synthetic({"base": base, "v": base}, COMPUTES, noise=0.01, seeds=3, seed=3)
    out = ladder_verdict(same, "base", "v", higher_is_better=False)
    assert (
        out.kind == "inconclusive"
        and "detectable at 80% power (level 0.05/7) pooled over the rungs" in out.text
    )


def test_accuracies_are_fitted_as_error_rates():
    """An accuracy rising to 0.8 is fitted as an error rate falling to 0.2."""
    err = synthetic({"v": (0.2, 300.0, 0.25)}, COMPUTES, noise=0.001)
    acc = {v: {c: [1 - y for y in ys] for c, ys in byc.items()} for v, byc in err.items()}
    fit = fit_power_laws(points(acc), "own_e", flip=True)
    assert fit.predict("v", 1e13) == pytest.approx(1 - (0.2 + 300.0 * 1e13**-0.25), abs=0.01)
    assert math.isfinite(fit.curves["v"].alpha)
