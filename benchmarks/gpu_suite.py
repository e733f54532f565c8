"""The GPU measurements of docs/PERFORMANCE.md in one call: the GPU tests, the attention
table, the GLM-Base and GLM-Large training steps and an xformers profile, within one time
budget (default 450 s, so the call ends under 8 minutes with start-up), into ONE JSON lines
file.

    python benchmarks/gpu_suite.py --out gpu_results/suite.jsonl   # CUDA (benchmarks/h100.sh suite)
    python benchmarks/gpu_suite.py --dry --out /tmp/suite.jsonl    # CPU, tiny shapes: a rehearsal

Each part runs in its own process, limited to its cap or to what is left of the budget,
whichever is less, and killed (with its process group: compile workers too) when over. The
benchmarks append their rows to the file as they measure them (``--out``), so what a killed
part measured stays; then this script appends one ``suite_part`` object per part (status
``ok`` / ``failed`` / ``timeout`` / ``not_run``, seconds, the end of stderr when it did not
succeed). The tests' part carries pytest's counts. Every object has the environment: date,
GPU, driver, torch / CUDA / xformers / glmlab versions, commit.

Caps per part (seconds): tests 130, attention 90, Base 110, Large 240, profile 40; the
budget bounds the sum, so Large gets what the parts before it leave. Sized from
/work/shared/GPU.md (GPU tests 62 s with two GPU backends, three now; one compiled 24-layer
step pair did not finish in 150 s with 6 warm-up steps, so the steps here take 3 warm-up
steps, 4 s timed, and one compilation per model: the batches' varying sizes are marked
dynamic first). None of these times is measured for this code.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import append_jsonl, environment

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 450.0


@dataclass
class Part:
    """One process of the suite: a name, a time cap and its command line (after python)."""

    name: str
    cap_s: float
    args: list[str]


def plan(args: argparse.Namespace, junit: Path) -> list[Part]:
    """The suite's parts, in order (tiny CPU versions with ``--dry``)."""
    out = ["--out", str(args.out)]
    profiled = "sdpa" if args.dry else "xformers"
    profile = [
        "--profile",
        profiled,
        "--profile-out",
        f"{args.files}/attention_profile_{profiled}.txt",
    ]
    tests = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit)]
    if args.dry:
        return [
            Part(
                "gpu_tests",
                120,
                [*tests, "tests/test_attention_gpu_backends.py::test_varlen_plan_matches_layout"],
            ),
            Part("attention", 120, ["benchmarks/attention.py", "--device", "cpu", "--quick", *out]),
            Part(
                "train_base", 120, ["benchmarks/train_step.py", "--device", "cpu", "--quick", *out]
            ),
            Part(
                "train_large", 120, ["benchmarks/train_step.py", "--device", "cpu", "--quick", *out]
            ),
            Part(
                "attention_profile",
                60,
                [
                    "benchmarks/attention.py",
                    "--device",
                    "cpu",
                    "--quick",
                    "--profile",
                    "sdpa",
                    *profile,
                ],
            ),
        ]
    step = ["benchmarks/train_step.py", "--seconds", "4", "--warmup", "3", *out]
    table = ["benchmarks/attention.py", "--seconds", "0.5", "--min-iters", "5"]
    return [
        Part("gpu_tests", 130, [*tests, "-m", "gpu", "tests/test_attention_gpu_backends.py"]),
        Part(
            "attention",
            90,
            [*table, "--eager-max-len", "1024", *out],
        ),
        Part("train_base", 110, [*step, "--shapes", "base", "--min-steps", "10"]),
        Part("train_large", 240, [*step, "--shapes", "large", "--min-steps", "5"]),
        Part(
            "attention_profile",
            40,
            [
                "benchmarks/attention.py",
                "--profile",
                "xformers",
                "--seq-lens",
                "512",
                "2048",
                *profile,
            ],
        ),
    ]


def run_part(part: Part, timeout_s: float) -> dict[str, Any]:
    """Run ``part`` for at most ``timeout_s``; its status, seconds and stderr's end."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *part.args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills compile workers too
    )
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        status = "timeout"
    row: dict[str, Any] = {
        "part": part.name,
        "status": status,
        "seconds": round(time.perf_counter() - start, 2),
        "timeout_s": round(timeout_s, 1),
        "returncode": proc.returncode,
    }
    if status != "ok":
        row["stderr_tail"] = (stderr or "")[-2000:]
    return row


def pytest_counts(junit: Path) -> dict[str, int]:
    """passed / failed / errors / skipped from pytest's JUnit XML (empty when absent)."""
    if not junit.exists():
        return {}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="the JSON lines file (appended to)")
    p.add_argument("--files", default=None, help="folder for the profile table (default: --out's)")
    p.add_argument("--budget-s", type=float, default=BUDGET_S, help="all parts together")
    p.add_argument("--dry", action="store_true", help="CPU, tiny shapes: rehearse the suite")
    p.add_argument("--parts", nargs="+", default=None, help="run only these parts")
    args = p.parse_args(argv)
    args.files = args.files or str(args.out.parent)
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu" if args.dry or not torch.cuda.is_available() else "cuda")
    env = environment(device)
    deadline = time.perf_counter() + args.budget_s
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "gpu_tests.xml"
        for part in plan(args, junit):
            if args.parts and part.name not in args.parts:
                continue
            left = deadline - time.perf_counter()
            if left < 5:
                row = {"part": part.name, "status": "not_run", "seconds": 0.0}
            else:
                row = run_part(part, min(part.cap_s, left))
            if part.name == "gpu_tests":
                row |= pytest_counts(junit)
            row = {"benchmark": "suite_part", **row, **env}
            append_jsonl(args.out, [row])
            rows.append(row)
            print(f"{part.name}: {row['status']} in {row['seconds']} s", flush=True)
    return rows


if __name__ == "__main__":
    main()
