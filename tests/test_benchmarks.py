"""The benchmarks run end to end at tiny sizes on the CPU and print what docs/PERFORMANCE.md
reads (numbers are not checked: timings belong to the benchmarks, not to unit tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import attention, gpu_suite, train_step
from benchmarks.collate import make_source

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(script: str, *args: str, timeout: int = 600) -> str:
    """A benchmark script's stdout, run as a user runs it (``python benchmarks/x.py``)."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout


@pytest.mark.slow  # runs the benchmark end to end
def test_collate_prints_one_json_object_per_mode() -> None:
    # A subprocess: the benchmark pins its process to one core and one thread.
    out = run_benchmark(
        "benchmarks/collate.py", "--seconds", "0.1", "--texts", "64", "--json", timeout=120
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["mode"] for r in rows] == ["token", "sentence", "document", "mix"]
    for r in rows:
        assert r["samples_per_s"] > 0 and r["samples"] >= 16  # one sample per unpacked row
        assert (r["seq_len"], r["batch_size"], r["prepare_host"]) == (512, 16, "xformers")
        assert {"torch", "date", "cpu"} <= r.keys()


@pytest.mark.slow  # runs the benchmark end to end
def test_attention_quick_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "attention.jsonl"
    rows = attention.main(["--device", "cpu", "--quick", "--json", "--out", str(out)])
    measured = [r for r in rows if not r.get("summary")]
    assert {r["backend"] for r in measured} == {"eager", "sdpa"}  # what runs on a CPU
    assert all(r["ms"] > 0 and r["useful_tflops"] > 0 for r in measured)
    summaries = [r for r in rows if r.get("summary")]
    assert [r["seq_len"] for r in summaries] == [32, 64]
    assert all(r["auto_choice"] == "sdpa" for r in summaries)  # eager is never auto's choice
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_attention_summary_applies_the_xformers_targets() -> None:
    ms = {"eager": 0.1, "sdpa": 1.0, "flex": 2.0, "xformers": 1.2}
    low = attention.summary_row(512, ms)
    assert low["auto_choice"] == "sdpa"  # the fastest candidate; eager is not one
    assert low["xformers_vs_best_of_sdpa_flex"] == pytest.approx(1 / 1.2)
    assert low["xformers_target_met"] is True  # >= 0.8x below L = 2048
    assert attention.summary_row(2048, ms)["xformers_target_met"] is False  # >= 1x from 2048
    assert "xformers_target_met" not in attention.summary_row(2048, {"sdpa": 1.0})


@pytest.mark.slow  # runs the benchmark end to end
def test_attention_profile_writes_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "profile.txt"
    attention.main(["--device", "cpu", "--quick", "--profile", "sdpa", "--profile-out", str(path)])
    text = path.read_text()
    assert text.count("== sdpa, L=") == 2 and "-- by host time" in text
    assert "aten::scaled_dot_product_attention" in text or "aten::_scaled_dot" in text


def test_allowed_pairs_counts_the_glm_mask() -> None:
    layout = attention.glm_layout(2, 10, np.random.default_rng(0))
    dense = layout.dense_mask()
    assert attention.allowed_pairs(layout) == int(dense.sum())


@pytest.mark.slow  # runs the benchmark end to end
def test_train_step_quick_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    rows = train_step.main(["--device", "cpu", "--quick", "--json", "--out", str(out)])
    assert [r["model"] for r in rows] == ["causal_baseline", "glmlab"]
    baseline, glm = rows
    # The models are the shapes asked for: tiny (2 x 64, 2 heads), vocabulary 512, L = 64.
    # nanoGPT's count by hand: token and position tables, per block two LayerNorms, qkv,
    # the output projection and the 4x MLP (biases included), a final LayerNorm; tied head.
    block = 2 * 2 * 64 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64)
    assert baseline["params"] == 512 * 64 + 64 * 64 + 2 * block + 2 * 64 == 136_960
    # glmlab's GLM: the same blocks; learned_2d's two position tables of max_positions + 1
    # = 65 rows each instead of one table of 64.
    assert glm["params"] == 512 * 64 + 2 * 65 * 64 + 2 * block + 2 * 64 == 141_184
    assert glm["attention"] == "sdpa" and glm["attention_selection"]["method"] == "default"
    assert all(r["steps"] >= 2 and r["first_step_s"] <= r["warmup_s"] for r in rows)
    assert glm["mfu"] is None  # no peak FLOP/s known for a CPU
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_varying_batch_sizes_are_marked_dynamic() -> None:
    source = make_source(
        "token", seq_len=64, batch_size=4, n_texts=16, prepare_host=None, vocab=512
    )
    batches = [source.batch(i) for i in range(4)]
    assert len({b.n_loss_tokens for b in batches}) > 1  # else this test checks nothing
    assert train_step.varying_dims(batches) == {"loss_positions": [0]}
    assert train_step.varying_dims(batches[:1]) == {}
    marked = batches[0]
    train_step.mark_dynamic({"loss_positions": [0]})(marked)
    assert marked.loss_positions._dynamo_weak_dynamic_indices == {0}


def test_suite_counts_pytest_results_and_kills_a_part_over_time(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="3" tests="10">'
        "</testsuite></testsuites>"
    )
    assert gpu_suite.pytest_counts(junit) == {"passed": 4, "failed": 2, "errors": 1, "skipped": 3}
    assert gpu_suite.pytest_counts(tmp_path / "absent.xml") == {}
    slow = gpu_suite.Part("sleeper", 60, ["-c", "import time; time.sleep(60)"])
    row = gpu_suite.run_part(slow, timeout_s=0.2)
    assert row["status"] == "timeout" and row["returncode"] == -9
    failing = gpu_suite.Part("raiser", 60, ["-c", "raise SystemExit('broken part')"])
    row = gpu_suite.run_part(failing, timeout_s=60)
    assert row["status"] == "failed" and "broken part" in row["stderr_tail"]


def test_suite_out_of_budget_records_every_part_as_not_run(tmp_path: Path) -> None:
    out = tmp_path / "suite.jsonl"
    rows = gpu_suite.main(["--dry", "--out", str(out), "--budget-s", "0"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == rows
    assert [r["part"] for r in rows] == [
        "gpu_tests",
        "attention",
        "train_base",
        "train_large",
        "attention_profile",
    ]
    assert {r["status"] for r in rows} == {"not_run"}


@pytest.mark.slow
def test_suite_dry_run_writes_one_well_formed_jsonl(tmp_path: Path) -> None:
    """The h100.sh ``suite`` stage, rehearsed on the CPU at tiny shapes."""
    out = tmp_path / "suite.jsonl"
    subprocess.run(
        [sys.executable, "benchmarks/gpu_suite.py", "--dry", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for r in rows:  # every measurement says when, where and with what
        assert {
            "benchmark",
            "date",
            "gpu",
            "driver",
            "torch",
            "cuda",
            "xformers",
            "glmlab",
        } <= r.keys()
    parts = {r["part"]: r for r in rows if r["benchmark"] == "suite_part"}
    assert list(parts) == [
        "gpu_tests",
        "attention",
        "train_base",
        "train_large",
        "attention_profile",
    ]
    assert all(p["status"] == "ok" for p in parts.values()), parts
    assert parts["gpu_tests"]["passed"] > 0 and parts["gpu_tests"]["failed"] == 0
    kinds = [r["benchmark"] for r in rows]
    assert kinds.count("train_step") == 4  # baseline and GLM, for each training part
    assert sum(1 for r in rows if r["benchmark"] == "attention" and r.get("summary")) == 2
    assert "-- by host time" in (tmp_path / "attention_profile_sdpa.txt").read_text()


@pytest.mark.slow
def test_data_benchmark_prepares_a_generated_corpus(tmp_path: Path) -> None:
    pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    args = ["--sizes", "0.2", "--num-proc", "1", "--json", "--warn-only"]
    args += ["--workdir", str(tmp_path)]
    out = run_benchmark("benchmarks/data.py", *args)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["size_mb"] == pytest.approx(0.2, abs=0.05) and row["tokens"] > 10_000
    assert row["prepare_mb_per_s"] > 0 and row["tokenizer_batch_mb_per_s"] > 0
    assert row["ids_dtype"] == "uint16" and row["peak_rss_mb"] > 0
    assert row["ratio"] > 0 and row["cpu_ratio"] > 0 and len(row["load_1min"]) == 4


@pytest.mark.slow  # runs a sweep end to end
def test_experiments_benchmark_prints_wall_time_and_reference_lines(tmp_path: Path) -> None:
    from glmlab.testing.runs import TINY_OVERRIDES

    out_json = tmp_path / "experiments.json"
    args = ["--experiments", "sentinel_ablation", "--workdir", str(tmp_path / "work")]
    args += ["--json", str(out_json), "--override", *TINY_OVERRIDES]
    out = run_benchmark("benchmarks/experiments.py", *args)
    lines = out.splitlines()
    (head,) = [ln for ln in lines if ln.startswith("sentinel_ablation: ")]
    assert " min wall, " in head and " min CPU (exit 0); load average before " in head
    # 3 seeds x 2 variants and the A/A control arm (the baseline under train.stream=1).
    assert any(ln.startswith("  9 runs, ") for ln in lines)  # how many ran at once
    # Six steps learn nothing: the reference line names every metric with a trivial
    # reference as not past it, and the verdict is not a pass.
    refs = [ln for ln in lines if ln.startswith("  ⚠ not clearly past the trivial reference")]
    (ref,) = refs
    assert "⚠ not clearly past the trivial reference: " in ref
    assert "token infilling loss (unigram " in ref and "cloze accuracy (chance " in ref
    # The claim it tests: six steps learn nothing, so it cannot be judged at this size.
    (claim,) = [ln for ln in lines if ln.startswith("  claim 'sentinel tokens hurt': ")]
    assert "not testable at this scale" in claim and "did not learn" in claim
    assert lines[-1].startswith("  NOT PAST THE REFERENCES: glmlab: sweep ")
    (row,) = json.loads(out_json.read_text())
    assert row["experiment"] == "sentinel_ablation" and row["returncode"] == 0
    assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["passed"] is False
    assert row["claims"] == [claim.strip()]
    assert (tmp_path / "work" / "sweeps" / "sentinel_ablation" / "report.md").is_file()


@pytest.mark.slow  # a few hundred simulated sweeps and ladders
def test_calibration_prints_its_table_and_writes_its_rows(tmp_path: Path) -> None:
    out_json = tmp_path / "calibration.json"
    args = ["--sims", "40", "--seeds", "3", "--no-legacy", "--json", str(out_json)]
    out = run_benchmark("benchmarks/calibration.py", *args, timeout=900)
    assert "| regime | seeds | path | FPR at 0.05 | 95% coverage |" in out
    assert "plain Satterthwaite (no seed guard)" in out and "one Holm family" in out
    rows = json.loads(out_json.read_text())
    paths = {(c["regime"][:8], c["path"]) for c in rows["cells"]}
    assert ("measured", "paired") in paths and ("cloze, 0", "unpaired") in paths
    for c in rows["cells"]:
        assert 0.0 <= c["false_positive_rate"] <= 1.0 and 0.0 <= c["coverage"] <= 1.0
    assert len(rows["family"]) == 3


@pytest.mark.slow  # four tiny runs
def test_threads_benchmark_finds_one_thread_count_bitwise_equal(tmp_path: Path) -> None:
    out = run_benchmark("benchmarks/threads.py", "--steps", "12", "--threads", "1", "2")
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    same = json.loads(lines["threads 1 twice"])
    assert same["weights_bitwise_equal"] and same["item_scores_equal"]
    assert "max_weight_diff" in json.loads(lines["threads 1 vs 2"])


def test_experiments_benchmark_reads_the_bare_commands_summary() -> None:
    """The bare `python -m glmlab` (``default``) is judged by its summary's lines."""
    from benchmarks.experiments import BARE, EXPERIMENTS, parse_summary, past_references

    assert EXPERIMENTS[0] == BARE == "default"
    out = (
        "glmlab: run completed at step 800 in 40 s: runs/default/defaults\n"
        "  scale cpu (auto: no CUDA device on this machine; scale=gpu to choose)\n"
        "    token infilling loss 5.270 (unigram 5.750): past unigram (95% interval 5.2–5.3)\n"
        "    cloze accuracy 0.410 (chance 0.250): past chance (95% interval 0.35–0.47)\n"
        "    generation loss 6.080 (unigram 5.727): ⚠ NOT past unigram (95% interval 6.0–6.2)\n"
    )
    _, references, _, _ = parse_summary(out)
    # Judged on the two metrics a sweep report judges; generation is shown, not judged.
    assert len(references) == 3 and past_references(references)
    behind = out.replace(": past chance", ": ⚠ NOT past chance")
    assert not past_references(parse_summary(behind)[1])


def test_experiments_benchmark_reads_a_sweeps_reference_lines() -> None:
    """A sweep's closing lines (glmlab.report.verdict_md.reference_console); a verdict line
    that mentions a reference is not one of them."""
    from benchmarks.experiments import parse_summary, past_references

    out = (
        "glmlab: sweep s: verdicts\n"
        "  b vs a: token infilling loss inconclusive: ...; ⚠ not past the trivial reference: b\n"
        "  every variant is past its trivial reference (95% intervals clear of it) on token "
        "infilling loss (unigram 5.75), cloze accuracy (chance 0.25)\n"
        "  ran 6 runs, 2 at once, in 99 s (hydra.launcher.n_jobs sets how many at once)\n"
    )
    launched, references, _, _ = parse_summary(out)
    assert launched == "6 runs, 2 at once, in 99 s" and len(references) == 1
    assert past_references(references)
    behind = out.replace("  ran ", "  ⚠ not clearly past the trivial reference: x (y)\n  ran ")
    assert len(parse_summary(behind)[1]) == 2 and not past_references(parse_summary(behind)[1])


WORKERS = """
import multiprocessing as mp, time
def burn(_):
    start = time.process_time()
    while time.process_time() - start < 1.0:
        pass
    used = time.process_time() - start
    time.sleep(0.7)  # idle: the sampler (every 0.5 s) reads the final CPU time
    return used
if __name__ == "__main__":
    with mp.get_context("forkserver").Pool(2) as pool:
        print(sum(pool.map(burn, range(2))))
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_session_cpu_counts_workers_nobody_reaps(tmp_path: Path) -> None:
    """A sweep's runs are forkserver workers: their CPU time is counted, which the command's
    own children's usage (RUSAGE_CHILDREN) misses."""
    from benchmarks.session_cpu import run_counting_cpu

    (tmp_path / "w.py").write_text(WORKERS)
    proc, cpu = run_counting_cpu([sys.executable, "w.py"], tmp_path)
    workers = float(proc.stdout)
    assert proc.returncode == 0 and workers >= 2.0
    assert workers - 0.2 <= cpu <= workers + 2.0
