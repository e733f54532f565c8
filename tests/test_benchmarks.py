"""The benchmarks run end to end at tiny sizes on the CPU and print what docs/PERFORMANCE.md
reads (numbers are not checked: timings belong to the benchmarks, not to unit tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import attention, train_step

ROOT = Path(__file__).resolve().parent.parent


def test_collate_prints_one_json_object_per_mode() -> None:
    # A subprocess: the benchmark pins its process to one core and one thread.
    out = subprocess.run(
        [sys.executable, "benchmarks/collate.py", "--seconds", "0.1", "--texts", "64", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["mode"] for r in rows] == ["token", "sentence", "document", "mix"]
    for r in rows:
        assert r["samples_per_s"] > 0 and r["samples"] >= 16  # one sample per unpacked row
        assert (r["seq_len"], r["batch_size"], r["host_prep"]) == (512, 16, "xformers")
        assert {"torch", "date", "cpu"} <= r.keys()


def test_attention_quick_on_cpu() -> None:
    rows = attention.main(["--device", "cpu", "--quick", "--json"])
    measured = [r for r in rows if not r.get("summary")]
    assert {r["backend"] for r in measured} == {"eager", "sdpa"}  # what runs on a CPU
    assert all(r["ms"] > 0 and r["useful_tflops"] > 0 for r in measured)
    summaries = [r for r in rows if r.get("summary")]
    assert [r["seq_len"] for r in summaries] == [32, 64]
    assert all(r["backend"] == "sdpa" for r in summaries)  # auto on the CPU


def test_allowed_pairs_counts_the_glm_mask() -> None:
    layout = attention.glm_layout(2, 10, np.random.default_rng(0))
    dense = layout.dense_mask()
    assert attention.allowed_pairs(layout) == int(dense.sum())


def test_train_step_quick_on_cpu() -> None:
    rows = train_step.main(["--device", "cpu", "--quick", "--json"])
    assert [r["model"] for r in rows] == ["causal_baseline", "glmlab"]
    glm = rows[1]
    assert glm["attention"] == "sdpa" and glm["tokens_per_s"] > 0
    assert glm["vs_baseline_tokens_per_s"] == glm["tokens_per_s"] / rows[0]["tokens_per_s"]
    assert glm["mfu"] is None  # no peak FLOP/s known for a CPU


@pytest.mark.slow
def test_data_benchmark_prepares_a_generated_corpus(tmp_path: Path) -> None:
    pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    args = ["--sizes", "0.2", "--num-proc", "1", "--json", "--workdir", str(tmp_path)]
    out = subprocess.run(
        [sys.executable, "benchmarks/data.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["size_mb"] == pytest.approx(0.2, abs=0.05) and row["tokens"] > 10_000
    assert row["prepare_mb_per_s"] > 0 and row["tokenizer_batch_mb_per_s"] > 0
    assert row["ids_dtype"] == "uint16" and row["peak_rss_mb"] > 0
