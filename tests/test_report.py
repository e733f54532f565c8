"""Sweep reports: statistics against hand-computed values on synthetic runs, failing and
diverging runs in a real sweep, resuming a half-finished sweep, and the HTML in a browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from glmlab.report import build_report
from tests.browser import CHROMIUM, chromium_args, page_layout
from tests.conftest import TINY, run_glmlab

BASE, OFF = "objective.shuffle_spans=true", "objective.shuffle_spans=false"


def write_run(
    sweep: Path,
    name: str,
    variant: str,
    seed: int,
    *,
    status: str = "completed",
    val: float | None = None,
    cloze: float | None = None,
    step: int = 20,
    error: str | None = None,
) -> None:
    """A run directory as a glmlab multirun leaves it: result, config and metrics."""
    run = sweep / name
    run.mkdir(parents=True)
    result = {
        "status": status,
        "seed": seed,
        "step": step,
        "variant": [variant],
        "final_val_loss": val,
        "error": error,
        "run_dir": str(run),
    }
    if status == "completed":
        result["eval"] = {"cloze_acc": cloze, "infill_token_loss": val + 1, "infill_token_ppl": 1.0}
        result["attention_selection"] = {
            "backend": "sdpa",
            "method": "measured" if seed < 2 else "cached",
            "requested": "auto",
            "timings_ms": {"xformers": 2.5, "sdpa": 0.68, "flex": 0.7},
        }
    (run / "result.json").write_text(json.dumps(result))
    shuffle = variant.endswith("true")
    config = {"seed": seed, "objective": {"shuffle_spans": shuffle, "kind": "glm"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {"step": s, "loss": 7.0 - s / 10 + seed / 10 + (0 if shuffle else 0.3)}
        for s in range(2, step + 1, 2)
    ]
    rows += [{"step": step, "val_loss": val}] if val is not None else []
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def synthetic_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for seed, (val, cloze) in enumerate([(5.0, 0.30), (5.2, 0.31), (5.4, 0.32)]):
        write_run(sweep, f"on{seed}", BASE, seed, val=val, cloze=cloze)
    for seed, (val, cloze) in enumerate([(5.5, 0.50), (5.6, 0.52), (5.7, 0.51)]):
        write_run(sweep, f"off{seed}", OFF, seed, val=val, cloze=cloze)
    write_run(sweep, "off3", OFF, 3, status="diverged", step=7, error="loss is nan at step 7")
    write_run(sweep, "on3", BASE, 3, status="failed", step=0, error="ValueError: boom")
    # A run killed before it wrote result.json: Hydra had saved its overrides.
    cut = sweep / "cut"
    (cut / ".hydra").mkdir(parents=True)
    (cut / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([OFF, "seed=4"]))
    (cut / "config.yaml").write_text(
        yaml.safe_dump({"seed": 4, "objective": {"shuffle_spans": False, "kind": "glm"}})
    )
    (cut / "metrics.jsonl").write_text(json.dumps({"step": 4, "loss": 6.0}) + "\n")
    return sweep


def test_report_statistics_verdicts_and_problem_runs(synthetic_sweep):
    md = build_report(
        synthetic_sweep, baseline=BASE, metric=["final_val_loss", "cloze_acc"]
    ).read_text()
    # These runs hold no per-item scores: the report tests over seeds only, and says so.
    # Both arms completed seeds 0-2: a paired t over seeds (scipy.stats.ttest_rel).
    table = md[md.index("### cloze accuracy") :]
    assert f"| {BASE} **(baseline)** | 0.3100 ± 0.0100 | [0.2852, 0.3348] | 3 | – | – |" in table
    raw = sps.ttest_rel([0.50, 0.52, 0.51], [0.30, 0.31, 0.32]).pvalue
    # Two tests in the family (the difference and the stability test, which 4 against 3 ended
    # runs could pass; no margin declared: no equivalence test): Holm doubles the smaller.
    cell = f"**+0.2000 [+0.1752, +0.2248]** | {2 * raw:.3g} (raw {raw:.3g}) |"
    assert f"| {OFF} | 0.5100 ± 0.0100 | [0.4852, 0.5348] | 3 | {cell}" in table
    # Not a verdict metric: the difference and its interval, no test.
    assert (
        f"| {OFF} | 6.6000 ± 0.1000 | [6.3516, 6.8484] | 3 | +0.4000 [+0.1516, +0.6484] | – |" in md
    )
    assert "Over seeds only: token infilling loss, cloze accuracy" in md
    # The variants train different objectives: their validation losses are shown, not tested.
    assert f"| {OFF} | 5.6000 ± 0.1000 | [5.3516, 5.8484] | 3 | – | – |" in md
    # One verdict row per variant: the diverged run counts (a trade-off), the missing ones
    # are named (judged on k of n seeds).
    assert (
        f"| {OFF} | not tested: the variants train different objectives "
        "(objective.shuffle_spans) | trade-off: better: +0.2000 [+0.1752, +0.2248], "
        f"p = {2 * raw:.3g} (adjusted; raw {raw:.3g}) on the completed runs, but the variant "
        "diverged more often; judged on 3 of 5 seeds (1 diverged, 1 failed or unfinished) vs "
        "baseline 3 of 4 seeds (1 failed or unfinished); diverged 1 of 4 [1%, 81%] vs "
        "baseline 0 of 3 [0%, 71%] |"
    ) in md
    assert f"- Stability, `{OFF}`: diverged 1 of 4 [1%, 81%] vs baseline 0 of 3" in md
    assert "one family of 2 tests (1 difference, 1 stability)" in md
    # The key that differs between variants is found in the configs; the seed is not listed.
    assert "| objective.shuffle_spans | true | false |" in md
    assert "| seed |" not in md
    assert f"| {BASE} **(baseline)** | 3 / 4 | 0 | 1 | 0 | 0,1,2,3 |" in md
    assert f"| {OFF} | 3 / 5 | 1 | 0 | 1 | 0,1,2,3,4 |" in md
    assert f"- diverged: {OFF}, seed 3 at step 7: loss is nan at step 7" in md
    assert f"- failed: {BASE}, seed 3 at step 0: ValueError: boom" in md
    assert f"- unfinished: {OFF}, seed 4 at step 4: no result.json" in md
    assert "ppl at mean" in md and "infill_token_ppl" not in md
    # How auto chose the attention backend, with its measured times, fastest first.
    timed = "sdpa 0.68 ms, flex 0.7 ms, xformers 2.5 ms"
    assert f"- {BASE}: sdpa (measured: {timed}), 2 of 4 runs" in md
    assert f"- {OFF}: sdpa (cached: {timed}), 1 of 5 runs" in md
    assert "**Method.**" in md and "Holm" in md

    html = (synthetic_sweep / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "<table>" in html
    assert "<strong>+0.2000 [+0.1752, +0.2248]</strong>" in html
    assert (synthetic_sweep / "loss_curves.png").stat().st_size > 10_000


def write_items(run: Path, cloze: np.ndarray, logp: np.ndarray, n: np.ndarray) -> None:
    """The run's eval_items.json: per-item scores and reference levels, as the trainer
    writes them; result.json's eval metrics are made to agree with the items."""
    tasks = {
        "infill_token": {"logp": logp.tolist(), "n": n.tolist()},
        "cloze": {"credit": cloze.tolist()},
    }
    reference = {
        "chance": {"cloze_acc": 0.25},
        "unigram": {"cloze_acc": 0.27, "infill_token_loss": 6.0},
        "random_init": {"cloze_acc": 0.24, "infill_token_loss": 7.0},
    }
    (run / "eval_items.json").write_text(
        json.dumps({"step": 20, "tasks": tasks, "reference_metrics": reference})
    )
    result = json.loads((run / "result.json").read_text())
    result["eval"] = {
        "cloze_acc": float(cloze.mean()),
        "infill_token_loss": float(-logp.sum() / n.sum()),
        "train_tokens_per_s": 1000.0 + result["seed"],
    }
    (run / "result.json").write_text(json.dumps(result))


@pytest.fixture
def paired_sweep(tmp_path: Path) -> Path:
    """Three variants (norm layouts), three seeds, 40 items: post_ln is clearly worse on
    infilling (+0.3 nats per token), deepnorm equal to the baseline up to noise."""
    sweep = tmp_path / "paired"
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0.0, 1.0, 40)
    n = rng.integers(1, 6, 40).astype(float)
    easy = rng.random(40)
    for label, shift in [("pre_ln", 0.0), ("post_ln", 0.3), ("deepnorm", 0.0)]:
        for seed in range(3):
            name = f"{label}{seed}"
            write_run(sweep, name, f"norm_layout={label}", seed, val=5.0 + shift + seed / 100)
            per_token = 5.0 + shift + difficulty + rng.normal(0.0, 0.05, 40)
            cloze = (easy < 0.6 - shift + rng.normal(0, 0.02, 40)).astype(float)
            write_items(sweep / name, cloze, -per_token * n, n)
            config = {"seed": seed, "norm_layout": {"name": label}, "objective": {"kind": "glm"}}
            (sweep / name / "config.yaml").write_text(yaml.safe_dump(config))
    return sweep


def test_paired_statistics_with_holm_and_reference_levels(paired_sweep):
    md = build_report(
        paired_sweep,
        baseline="norm_layout=pre_ln",
        metric=["infill_token_loss", "cloze_acc"],
    ).read_text()
    assert "Over seeds only" not in md
    assert "95% intervals over seeds and items" in md
    table = md[md.index("### token infilling loss") :]
    row = next(line for line in table.splitlines() if line.startswith("| norm_layout=post_ln |"))
    # Δ is exactly +0.3 (the shared difficulty cancels, pairing by item); bold with a
    # Holm-adjusted p (two variants tested) next to the raw one.
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[4].startswith("**+0.3") and "(raw " in cells[5]
    diff = float(cells[4].strip("*").split(" ")[0])
    low, high = (float(x) for x in cells[4].strip("*").split("[")[1].rstrip("]").split(","))
    assert diff == pytest.approx(0.3, abs=0.02) and low < diff < high and high - low < 0.05
    deep = next(line for line in table.splitlines() if line.startswith("| norm_layout=deepnorm |"))
    assert "**" not in deep
    # Reference rows under each metric, and a verdict line on them.
    assert "| *reference: unigram* | 6.0000 |" in table
    assert "| *reference: untrained model* | 7.0000 |" in table
    assert "| *reference: chance* | 0.2500 |" in md
    assert "token infilling loss: every variant is past the unigram level 6.0000" in md
    # Throughput is shown, never tested.
    tput = md[md.index("### training tokens/s") :].split("\n##")[0]
    assert "not tested: throughput and memory" in tput and tput.count("**") == 2  # baseline
    html = (paired_sweep / "report.html").read_text()
    assert "<em>paired</em>" in html and "<em>reference: unigram</em>" in html
    # The same runs give the same numbers (nothing random in the statistics).
    assert (
        build_report(
            paired_sweep, baseline="norm_layout=pre_ln", metric=["infill_token_loss", "cloze_acc"]
        ).read_text()
        == md
    )


def test_report_without_matplotlib(synthetic_sweep, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    md = build_report(synthetic_sweep, baseline=BASE).read_text()
    assert "matplotlib is not installed" in md and "![" not in md
    assert not (synthetic_sweep / "loss_curves.png").exists()
    assert "data:image" not in (synthetic_sweep / "report.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_layout_fits_1200px_in_headless_chromium(paired_sweep, tmp_path):
    build_report(
        paired_sweep, baseline="norm_layout=pre_ln", metric=["infill_token_loss", "cloze_acc"]
    )
    layout = page_layout(paired_sweep / "report.html", tmp_path)
    assert layout["width"] <= 1200
    assert layout["overflowing"] == [] and layout["scroll"] <= layout["width"], layout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(synthetic_sweep, tmp_path):
    from matplotlib.image import imread

    build_report(synthetic_sweep, baseline=BASE)
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            *chromium_args(tmp_path / "profile", 1200, 900),
            f"--screenshot={shot}",
            (synthetic_sweep / "report.html").resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), proc.stderr
    pixels = imread(shot)[..., :3]
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # text, table shading and headings: not a blank page
    assert (pixels < 0.5).mean() > 0.005  # some dark ink on the page


# A smaller evaluation suite keeps the end-to-end sweeps quick.
TINY_SWEEP = [*TINY, "train.eval_suite_items=8", "train.cloze_items=8", "train.classify_items=64"]


@pytest.mark.slow
def test_real_sweep_with_failing_and_diverging_runs(tmp_path):
    proc = run_glmlab(
        [
            "-m",
            *TINY_SWEEP,
            "name=mixed",
            "train.lr=0.003,1e30,-1",
            "seed=0,1",
            "report.baseline='train.lr=0.003'",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # a run failed: the sweep says so after its report
    sweep = tmp_path / "sweeps" / "mixed"
    md = (sweep / "report.md").read_text()
    assert "| train.lr=1e+30 | diverged in 2 of 2 runs (at steps 2, 2): nothing to compare |" in md
    assert (
        "- failed: train.lr=-1, seed 0 at step 0: ConfigError: train.lr=-1: must be a number > 0"
        in md
    )
    assert "- diverged: train.lr=1e+30, seed 1 at step 2: loss is nan" in md
    assert "| train.lr=0.003 **(baseline)** | 2 / 2 |" in md
    assert "### token infilling loss" in md
    assert (sweep / "report.html").stat().st_size > (sweep / "report.md").stat().st_size


@pytest.mark.slow
def test_rerun_resumes_a_half_finished_sweep(tmp_path):
    args = ["-m", *TINY_SWEEP, "name=half"]
    assert run_glmlab([*args, "seed=0"], cwd=tmp_path).returncode == 0
    # Seed 1 is cut off after 3 of 6 steps (a preemption drill: stop_after is not part of
    # the run directory's name); seed 0 is finished and skipped.
    proc = run_glmlab([*args, "seed=0,1", "train.stop_after=3"], cwd=tmp_path)
    # Not every run has a result yet (one stopped): the sweep says so and exits 1.
    assert proc.returncode == 1, proc.stderr
    assert "2 runs: 1 completed, 0 diverged, 0 failed, 1 stopped" in proc.stdout + proc.stderr
    sweep = tmp_path / "sweeps" / "half"
    assert "already completed: skipped" in proc.stderr + proc.stdout
    assert "- stopped: (defaults), seed 1 at step 3" in (sweep / "report.md").read_text()

    proc = run_glmlab([*args, "seed=0,1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stderr + proc.stdout
    assert "already completed: skipped" in out and "at step 3" in out and "resumed from" in out
    assert len(list(sweep.glob("*/result.json"))) == 2
    results = [json.loads(p.read_text()) for p in sweep.glob("*/result.json")]
    assert {(r["seed"], r["status"], r["step"]) for r in results} == {
        (0, "completed", 6),
        (1, "completed", 6),
    }
    md = (sweep / "report.md").read_text()
    assert "| (defaults) | 2 / 2 |" in md and "every run completed" in md


@pytest.mark.slow
def test_report_command_rebuilds_markdown_and_html(synthetic_sweep):
    (synthetic_sweep / "multirun.yaml").write_text(yaml.safe_dump({"report": {"baseline": BASE}}))
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.cli", "report", str(synthetic_sweep)],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout
    assert f"{BASE} **(baseline)**" in (synthetic_sweep / "report.md").read_text()
