"""Claims: each experiment's declared claim is checked before any run, judged on the
report's tested differences (reproduced / opposite / not significant / not testable at this
scale, with the reason), printed in the report and on the console, and counted by
``benchmarks/experiments.py``; divergence is a rate over runs, tested exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_module

from glmlab.config.claims import parse_claims
from glmlab.config.rules import ConfigError
from glmlab.config.spec import parse_config
from glmlab.report import build_report
from glmlab.report.claims import Difference, judge
from glmlab.report.console import sweep_summary
from glmlab.report.load import load_sweep
from glmlab.report.metrics import METRICS
from glmlab.report.rates import rate_test
from tests.test_report import write_items, write_run

EXPERIMENTS = sorted(p.stem for p in Path("conf/experiment").glob("*.yaml"))


def diff(estimate: float, low: float, high: float, p: float) -> Difference:
    return Difference(estimate, low, high, p, p < 0.05)


def test_judge_maps_a_tested_difference_and_the_claim_to_a_verdict():
    loss = {"higher_is_better": False}
    # A loss 0.3 higher is worse: as claimed, the opposite of a "better" claim.
    worse = diff(0.3, 0.2, 0.4, 0.001)
    assert judge(worse, expect="worse", **loss).verdict == "reproduced"
    assert judge(worse, expect="better", **loss).verdict == "opposite"
    assert (
        "significantly worse; the claim says better" in judge(worse, expect="better", **loss).reason
    )
    # Accuracy: higher is better.
    assert judge(worse, expect="better", higher_is_better=True).verdict == "reproduced"
    unclear = diff(0.05, -0.05, 0.15, 0.3)
    assert judge(unclear, expect="worse", **loss).verdict == "not significant"
    # Equivalence within a margin: inside, beyond, or neither.
    assert (
        judge(diff(0.01, -0.02, 0.04, 0.5), expect="equivalent", margin=0.05, **loss).verdict
        == "reproduced"
    )
    assert (
        judge(diff(0.3, 0.2, 0.4, 0.001), expect="equivalent", margin=0.05, **loss).verdict
        == "opposite"
    )
    assert judge(unclear, expect="equivalent", margin=0.05, **loss).verdict == "not significant"
    # No test, or a precondition the arms do not meet: not testable, with the reason.
    assert judge(None, expect="worse", **loss).verdict == "not testable at this scale"
    why = "`positional=learned_1d` is not past the chance level"
    out = judge(worse, expect="worse", untestable=why, **loss)
    assert (out.verdict, out.reason) == ("not testable at this scale", why)


def test_claims_are_checked_before_any_run_with_one_line_per_problem():
    good = {"name": "x", "variant": "a=1", "metrics": {"cloze_acc": "one span"}}
    assert parse_claims([good])[0].expect == "worse" and parse_claims(None) == []
    with pytest.raises(ConfigError) as err:
        parse_claims(
            [
                {**good, "expect": "sideways"},
                {"name": "y", "variant": "a=1"},
                {**good, "expect": "equivalent"},
                {**good, "requires": {"cloze_acc": "oracle"}},
                {**good, "colour": "red"},
            ]
        )
    message = str(err.value)
    assert "report.claims[0].expect=sideways: must be one of better, worse, equivalent" in message
    assert "report.claims[1].metrics is empty" in message
    assert "report.claims[2].margins lacks ['cloze_acc']" in message
    assert "report.claims[3].requires={'cloze_acc': 'oracle'}" in message
    assert "unknown key(s) ['colour'] in the 'report.claims[4]' config" in message
    # The whole config is refused at composition's check, naming the claim.
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=["+report.claims=[{name:x,variant:'a=1'}]"])
    with pytest.raises(ConfigError, match=r"report.claims\[0\].metrics is empty"):
        parse_config(cfg)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_names_its_claim_verdict_metrics_and_why(experiment):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={experiment}"])
    spec = parse_config(cfg)
    claims = parse_claims(spec.report.claims)
    assert claims, f"{experiment} declares no claim"
    swept = yaml.safe_load(Path(f"conf/experiment/{experiment}.yaml").read_text())
    swept = swept["hydra"]["sweeper"]["params"]
    arms = {
        f"{k}={v.strip()}" for k, values in swept.items() if k != "seed" for v in values.split(",")
    }
    verdict_metrics = set(spec.report.metric)
    for c in claims:
        assert c.variant in arms and (c.against is None or c.against in arms), c.name
        for metric, why in {**c.metrics, **c.beside}.items():
            assert metric in METRICS and metric in verdict_metrics and len(why) > 20, metric
        assert set(c.requires) <= set(METRICS)


def test_divergence_is_a_rate_tested_exactly():
    # Boschloo's exact test: 3 of 3 against 0 of 3 (Fisher's would give 0.1).
    d = rate_test([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert d.diff == 1.0 and d.p == pytest.approx(0.03125) and d.significant
    assert d.describe(2) == "+1.00 (3/3 vs 0/3 runs)"
    assert rate_test([0.0, 0.0], [0.0, 0.0, 0.0]).p == 1.0
    assert rate_test([], [0.0]) is None


def claims_sweep(tmp_path: Path, claims: list[dict]) -> Path:
    """Three norm layouts x 3 seeds x 40 items: post_ln +0.3 nats worse on infilling,
    deepnorm equal to pre_ln; post_ln diverges in 2 of 3 more runs; the sweep's
    multirun.yaml holds ``claims``."""
    sweep = tmp_path / "claims"
    rng = np.random.default_rng(0)
    difficulty, n = rng.normal(0.0, 1.0, 40), rng.integers(1, 6, 40).astype(float)
    for label, shift in [("pre_ln", 0.0), ("post_ln", 0.3), ("deepnorm", 0.0)]:
        for seed in range(3):
            name = f"{label}{seed}"
            write_run(sweep, name, f"norm_layout={label}", seed, val=5.0 + shift)
            per_token = 5.0 + shift + difficulty + rng.normal(0.0, 0.05, 40)
            write_items(sweep / name, np.full(40, 0.5), -per_token * n, n)
            result = json.loads((sweep / name / "result.json").read_text())
            result["stability"] = {"diverged": 0.0, "loss_spikes": float(label == "post_ln")}
            (sweep / name / "result.json").write_text(json.dumps(result))
        if label == "post_ln":
            for seed in (3, 4):
                write_run(sweep, f"{label}{seed}", f"norm_layout={label}", seed, status="diverged")
                result = json.loads((sweep / f"{label}{seed}" / "result.json").read_text())
                result["stability"] = {"diverged": 1.0, "loss_spikes": 2.0}
                (sweep / f"{label}{seed}" / "result.json").write_text(json.dumps(result))
    multirun = {"report": {"baseline": "norm_layout=pre_ln", "claims": claims}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    return sweep


def test_report_and_console_print_each_claim_with_its_verdict(tmp_path):
    neutral = "every arm is scored on the same tokens"
    claims = [
        {
            "name": "post-LN trains worse",
            "source": "a paper",
            "variant": "norm_layout=post_ln",
            "metrics": {"infill_token_loss": neutral, "diverged": "a run either diverges or not"},
            "beside": {"cloze_acc": "the cloze items are all the same here, a bias of the fixture"},
            "confounds": ["one width only"],
        },
        {
            "name": "deepnorm matches pre-LN",
            "variant": "norm_layout=deepnorm",
            "expect": "equivalent",
            "metrics": {"infill_token_loss": neutral},
            "margins": {"infill_token_loss": 0.1},
        },
        {
            "name": "deepnorm beats post-LN",
            "variant": "norm_layout=deepnorm",
            "against": "norm_layout=post_ln",
            "expect": "better",
            "metrics": {"infill_token_loss": neutral},
        },
    ]
    sweep_dir = claims_sweep(tmp_path, claims)
    md = build_report(sweep_dir, metric=["infill_token_loss", "diverged"]).read_text()
    section = md[md.index("## Claims") : md.index("**Method.**")]
    assert (
        "- **post-LN trains worse** (a paper): `norm_layout=post_ln` against `norm_layout=pre_ln`, "
        "expected worse. Verdict: **mixed**." in section
    )
    assert "  - token infilling loss: **reproduced**: +0.29" in section
    assert f"as claimed. Neutral: {neutral}." in section
    # 2 of 5 post-LN runs diverged against 0 of 3: counted, not significant with so few runs
    # (Boschloo's p 0.363, adjusted in the report's family of 5 tests).
    assert "  - divergence rate: **not significant**: +0.40, p = 1: worse" in section
    # Every run gives the same cloze accuracy: no variance, no test.
    assert (
        "cloze accuracy: not testable at this scale: no test: too few runs, or no variance"
        in section
    )
    assert "Bias: the cloze items are all the same here" in section
    assert "  - confounds not removed at this scale: one width only" in section
    assert "Verdict: **reproduced**" in section.split("deepnorm matches pre-LN")[1]
    assert "inside ±0.1" in section
    # Against another arm than the baseline: deepnorm better than post-LN.
    assert "`norm_layout=deepnorm` against `norm_layout=post_ln`, expected better." in section
    assert "significantly better, as claimed" in section.split("deepnorm beats post-LN")[1]
    # Divergence rows count diverged runs; other metrics leave them out.
    table = md[md.index("### divergence rate") :].split("\n### ")[0]
    assert "the share of runs with its Clopper-Pearson 95% interval" in table
    assert "| norm_layout=post_ln | 0.40 ± 0.55 |" in table
    # Did each run learn (past the unigram level 6.0 of its items)? The diverged ones did not.
    md = build_report(sweep_dir, metric=["stalled"]).read_text()
    table = md[md.index("### share of runs that did not learn") :].split("\n### ")[0]
    assert "| norm_layout=pre_ln **(baseline)** | 0.00 ± 0.00 |" in table
    assert (
        "| norm_layout=post_ln | 0.40 ± 0.55 | [0.05, 0.85] | 5 | +0.40 (2/5 vs 0/3 runs) |"
        in table
    )
    sweep = load_sweep(sweep_dir, metric=["infill_token_loss"])
    console = sweep_summary(sweep, sweep_dir / "report.md")
    line = next(x for x in console.splitlines() if "claim 'post-LN trains worse'" in x)
    assert line.startswith("  claim 'post-LN trains worse': mixed (")
    assert "token infilling loss: reproduced" in line and "divergence rate: not significant" in line
    assert (
        "  claim 'deepnorm matches pre-LN': reproduced (token infilling loss: reproduced)"
        in console
    )


def test_an_arm_that_did_not_learn_makes_the_claim_not_testable(tmp_path):
    claims = [
        {
            "name": "post-LN trains worse",
            "variant": "norm_layout=post_ln",
            "metrics": {"infill_token_loss": "the same tokens for every arm"},
            "requires": {"infill_token_loss": "unigram"},
        }
    ]
    sweep_dir = claims_sweep(tmp_path, claims)
    # The fixture's per-token losses average ~5.0-5.3 + item difficulty: set the unigram
    # level below them, so no arm is past it.
    for items in sweep_dir.glob("*/eval_items.json"):
        saved = json.loads(items.read_text())
        saved["reference_metrics"]["unigram"]["infill_token_loss"] = 3.0
        items.write_text(json.dumps(saved))
    md = build_report(sweep_dir, metric=["infill_token_loss"]).read_text()
    assert "Verdict: **not testable at this scale**" in md
    assert (
        "`norm_layout=post_ln` is not past the unigram level 3.0000 on token infilling loss" in md
    )
    assert "it did not learn what the comparison needs" in md


def test_the_rate_test_keeps_its_level_and_the_judge_its_error_rates():
    # Exact over every outcome (benchmarks/rates.py): at 3 seeds per arm the exact test
    # rejects at most 5% of the time when both arms share a rate, and always at 3/3 vs 0/3.
    from benchmarks.rates import judge_rates, rejection_rate

    assert max(rejection_rate(r, r, 3) for r in (0.1, 0.3, 0.5, 0.7, 0.9)) <= 0.05
    assert rejection_rate(1.0, 0.0, 3) == pytest.approx(1.0)
    rates = judge_rates(400)
    assert rates["worse, no true difference: reproduced"] <= 0.05
    assert rates["equivalent (margin 1 sd), true 2 sd: reproduced"] <= 0.05


def test_a_metric_no_arm_learned_is_not_testable_while_the_others_decide(tmp_path):
    claims = [
        {
            "name": "post-LN trains worse",
            "variant": "norm_layout=post_ln",
            "metrics": {
                "infill_token_loss": "the same tokens for every arm",
                "cloze_acc": "the same items for every arm",
            },
            "metric_requires": {"cloze_acc": "chance"},
        }
    ]
    sweep_dir = claims_sweep(tmp_path, claims)
    for items in sweep_dir.glob("*/eval_items.json"):  # every arm's cloze (0.5) at chance
        saved = json.loads(items.read_text())
        saved["reference_metrics"]["chance"]["cloze_acc"] = 0.5
        items.write_text(json.dumps(saved))
    md = build_report(sweep_dir, metric=["infill_token_loss", "cloze_acc"]).read_text()
    section = md[md.index("## Claims") : md.index("**Method.**")]
    assert "Verdict: **reproduced**." in section  # decided by the metric it could test
    assert (
        "  - cloze accuracy: **not testable at this scale**: `norm_layout=post_ln` is not "
        in section
    )
    assert "  - token infilling loss: **reproduced**" in section
    with pytest.raises(ConfigError, match=r"metric_requires names \['doc_gen_loss'\]"):
        parse_claims([{**claims[0], "metric_requires": {"doc_gen_loss": "unigram"}}])
