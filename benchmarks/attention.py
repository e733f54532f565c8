"""Attention backends on GLM masks: forward + backward time and useful TFLOP/s.

For each sequence length L, a batch of ``--tokens / L`` rows holds one GLM sample per row
with Part A a uniform 70-90% of L. Each registered backend available on the device runs
``attend`` forward and backward on bf16 q, k, v (B, H, L, D). The backend's
``prepare_host`` and ``prepare`` run once (as the collator and the model's forward do, once per batch and
not per layer) and timed separately as ``prepare_ms``. "Useful" FLOPs count only the
(query, key) pairs the mask allows: 4 * D * H per pair forward, 2.5x that backward.

    python benchmarks/attention.py --json                    # CUDA: L = 512 .. 4096
    python benchmarks/attention.py --device cpu --quick      # smoke test, tiny shapes
    python benchmarks/attention.py --profile xformers --seq-lens 512 --profile-out x.txt

Targets (docs/PERFORMANCE.md): xformers >= max(sdpa, flex) at L >= 2048 and >= 0.8x of it
at L = 512 and 1024. The ``summary`` row per L gives that ratio and the backend ``auto``
would take from these timings (fastest, ties within 3% to the preference order).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import append_jsonl, emit, environment
from glmlab.model.attention_candidates import AUTO_CUDA_PREFERENCE, NOT_TIMED, backend_candidates
from glmlab.model.attention_select import fastest
from glmlab.plugin.registry import get_registry
from glmlab.structures import AttentionLayout, Segment


def glm_layout(rows: int, seq_len: int, rng: np.random.Generator) -> AttentionLayout:
    """One full-row GLM sample per row, Part A a uniform 70-90% of the row."""
    segments = [Segment(r, 0, seq_len, int(rng.uniform(0.7, 0.9) * seq_len)) for r in range(rows)]
    builder = get_registry().create("mask_builder", "glm")
    return builder.build(segments, batch_size=rows, seq_len=seq_len)


def allowed_pairs(layout: AttentionLayout) -> int:
    """(query, key) pairs the layout allows, padding excluded: per segment with prefix p and
    b = length - p, p^2 (Part A) + b * p + b(b+1)/2 (Part B)."""
    total = 0
    for _, _, length, prefix in layout.segments:
        b = length - prefix
        total += prefix * prefix + b * prefix + b * (b + 1) // 2
    return total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], Any], device: torch.device, seconds: float, min_iters: int) -> float:
    """Time of one ``fn`` in ms: the median over rounds of 5 back-to-back runs (synchronised
    per round, not per run, so host work overlaps device work as in training), for
    ``seconds`` and at least ``min_iters`` runs, after warm-up."""
    for _ in range(3):
        fn()
    _sync(device)
    rounds: list[float] = []
    start = time.perf_counter()
    while 5 * len(rounds) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(5):
            fn()
        _sync(device)
        rounds.append((time.perf_counter() - t0) * 1e3 / 5)
    return statistics.median(rounds)


def bench_backend(
    name: str,
    layout: AttentionLayout,
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
    device: torch.device,
    args: argparse.Namespace,
) -> dict[str, Any]:
    backend = get_registry().create("attention", name)
    layout.host_prepared = backend.prepare_host(layout)  # as the collator does
    on_device = layout.to(device)
    prepare_ms = time_ms(lambda: backend.prepare(on_device), device, 0.2, 3)
    prepared = backend.prepare(on_device)
    q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    grad = torch.randn(shape, device=device, dtype=dtype)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return backend.attend(q, k, v, prepared)

    forward = torch.compile(attend) if args.compile else attend  # backward via AOTAutograd

    def step() -> None:
        torch.autograd.grad(forward(q, k, v), (q, k, v), grad)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ms = time_ms(step, device, args.seconds, args.min_iters)
    _, heads, _, head_dim = shape
    useful = 3.5 * 4 * head_dim * heads * allowed_pairs(layout)
    return {
        "backend": name,
        "ms": ms,
        "prepare_ms": prepare_ms,
        "useful_tflops": useful / (ms * 1e-3) / 1e12,
        "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
    }


def profile_backend(name: str, seq_len: int, args: argparse.Namespace, device: torch.device) -> str:
    """torch.profiler tables of 10 forward + backward runs of ``name`` at ``seq_len``: the
    operators by device time, then by host (self CPU) time, where fixed per-call overhead
    (op dispatch, bias construction, Python) shows."""
    rows = max(1, args.tokens // seq_len)
    layout = glm_layout(rows, seq_len, np.random.default_rng(0))
    backend = get_registry().create("attention", name)
    layout.host_prepared = backend.prepare_host(layout)
    on_device = layout.to(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = (rows, args.heads, seq_len, args.head_dim)
    q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))

    def step() -> None:  # what one layer does per training step: prepare is per forward
        backend.attend(q, k, v, backend.prepare(on_device)).sum().backward()

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(10):
            step()
        _sync(device)
    wall_ms = (time.perf_counter() - start) * 1e3 / 10
    averages = prof.key_averages()
    header = (
        f"== {name}, L={seq_len}, {rows} x {args.heads} heads x {args.head_dim}, "
        f"{str(dtype).removeprefix('torch.')}: {wall_ms:.3f} ms per prepare + fwd + bwd "
        "(wall, profiled)"
    )
    tables = [header]
    if device.type == "cuda":
        tables += ["-- by device time", averages.table(sort_by="cuda_time_total", row_limit=25)]
    tables += ["-- by host time", averages.table(sort_by="self_cpu_time_total", row_limit=25)]
    return "\n".join(tables) + "\n"


def summary_row(seq_len: int, ms: dict[str, float]) -> dict[str, Any]:
    """Per L: what ``auto`` would take from these times (``eager`` is never a candidate),
    and xformers against the faster of sdpa and flex (same work, so a ratio of times)
    with the target of docs/PERFORMANCE.md (>= 1 at L >= 2048, >= 0.8 below)."""
    candidates = {n: t for n, t in ms.items() if n not in NOT_TIMED}
    row: dict[str, Any] = {
        "benchmark": "attention",
        "summary": True,
        "seq_len": seq_len,
        "auto_choice": fastest(candidates, AUTO_CUDA_PREFERENCE) if candidates else None,
    }
    others = [ms[n] for n in ("sdpa", "flex") if n in ms]
    if "xformers" in ms and others:
        ratio = min(others) / ms["xformers"]
        row["xformers_vs_best_of_sdpa_flex"] = ratio
        row["xformers_target_met"] = ratio >= (1.0 if seq_len >= 2048 else 0.8)
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seq-lens", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--tokens", type=int, default=16384, help="rows x L per batch")
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--backends", nargs="+", default=None, help="default: all available")
    p.add_argument("--eager-max-len", type=int, default=2048, help="skip eager above this L")
    p.add_argument("--seconds", type=float, default=2.0, help="timing per configuration")
    p.add_argument("--min-iters", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="torch.compile forward+backward")
    p.add_argument("--quick", action="store_true", help="tiny shapes and times (CPU smoke test)")
    p.add_argument("--profile", metavar="BACKEND", help="profiler tables instead of timings")
    p.add_argument("--profile-out", metavar="FILE", help="write the profiler tables here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", metavar="FILE", help="also append each L's rows to this JSONL file")
    args = p.parse_args(argv)
    if args.quick:
        args.seq_lens, args.tokens, args.heads, args.head_dim = [32, 64], 256, 2, 16
        args.seconds, args.min_iters = 0.05, 2
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.profile:
        text = "".join(profile_backend(args.profile, L, args, device) for L in args.seq_lens)
        if args.profile_out:
            Path(args.profile_out).write_text(text, encoding="utf-8")
        else:
            print(text)
        return []
    registry = get_registry()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    names = args.backends or backend_candidates(registry, device)[0]
    env = environment(device)
    rows: list[dict[str, Any]] = []
    for seq_len in args.seq_lens:
        batch = max(1, args.tokens // seq_len)
        layout = glm_layout(batch, seq_len, np.random.default_rng(seq_len))
        shape = (batch, args.heads, seq_len, args.head_dim)
        by_name = {}
        for name in names:
            if name == "eager" and seq_len > args.eager_max_len:
                continue
            result = bench_backend(name, layout, shape, dtype, device, args)
            by_name[name] = result
            rows.append(
                {
                    "benchmark": "attention",
                    "seq_len": seq_len,
                    "batch": batch,
                    "heads": args.heads,
                    "head_dim": args.head_dim,
                    "dtype": str(dtype).removeprefix("torch."),
                    "compile": args.compile,
                    **result,
                    **env,
                }
            )
        rows.append({**summary_row(seq_len, {n: r["ms"] for n, r in by_name.items()}), **env})
        append_jsonl(args.out, [r for r in rows if r["seq_len"] == seq_len])
    emit(
        rows,
        args.json,
        [
            "seq_len",
            "backend",
            "ms",
            "prepare_ms",
            "useful_tflops",
            "peak_mem_gb",
            "auto_choice",
            "xformers_vs_best_of_sdpa_flex",
            "xformers_target_met",
        ],
    )
    return rows


if __name__ == "__main__":
    main()
