"""Attention backends on GLM masks: forward + backward time and useful TFLOP/s.

For each sequence length L, a batch of ``--tokens / L`` rows holds one GLM sample per row
with Part A a uniform 70-90% of L. Each registered backend available on the device runs
``attend`` forward and backward on bf16 q, k, v (B, H, L, D). The layout's host plan and
``prepare`` are built once (as the collator and the model's forward do, once per batch and
not per layer) and timed separately as ``prepare_ms``. "Useful" FLOPs count only the
(query, key) pairs the mask allows: 4 * D * H per pair forward, 2.5x that backward.

    python benchmarks/attention.py --json                    # CUDA: L = 512 .. 4096
    python benchmarks/attention.py --device cpu --quick      # smoke test, tiny shapes
    python benchmarks/attention.py --profile xformers --seq-lens 512   # torch.profiler table

Targets (docs/PERFORMANCE.md): the default (``auto``) backend >= max(sdpa, flex) at every
L, and >= 1.3x sdpa at L = 2048. The ``summary`` rows give those ratios.
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

from benchmarks.common import emit, environment
from glmlab.model.build import available_backends, resolve_attention
from glmlab.registry import get_registry
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
    host = getattr(backend, "prepare_host", None)
    if host is not None:
        layout.host = host(layout)
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


def profile_backend(
    name: str, seq_len: int, args: argparse.Namespace, device: torch.device
) -> None:
    """Print a torch.profiler table of 10 forward + backward runs of ``name`` at ``seq_len``."""
    rows = max(1, args.tokens // seq_len)
    layout = glm_layout(rows, seq_len, np.random.default_rng(0))
    backend = get_registry().create("attention", name)
    if hasattr(backend, "prepare_host"):
        layout.host = backend.prepare_host(layout)
    prepared = backend.prepare(layout.to(device))
    shape = (rows, args.heads, seq_len, args.head_dim)
    q, k, v = (
        torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True)
        for _ in range(3)
    )
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    for _ in range(3):
        backend.attend(q, k, v, prepared).sum().backward()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(10):
            backend.attend(q, k, v, prepared).sum().backward()
        _sync(device)
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=25))


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
    p.add_argument("--profile", metavar="BACKEND", help="print a profiler table instead")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.seq_lens, args.tokens, args.heads, args.head_dim = [32, 64], 256, 2, 16
        args.seconds, args.min_iters = 0.05, 2
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.profile:
        for seq_len in args.seq_lens:
            profile_backend(args.profile, seq_len, args, device)
        return []
    registry = get_registry()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    names = args.backends or available_backends(registry, device)
    default, _ = resolve_attention("auto", {}, device, registry)
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
                    "default": name == default,
                    **result,
                    **env,
                }
            )
        others = [by_name[n]["useful_tflops"] for n in ("sdpa", "flex") if n in by_name]
        if default in by_name and others:
            mine = by_name[default]["useful_tflops"]
            rows.append(
                {
                    "benchmark": "attention",
                    "summary": True,
                    "seq_len": seq_len,
                    "backend": default,
                    "vs_best_of_sdpa_flex": mine / max(others),
                    "vs_sdpa": mine / by_name["sdpa"]["useful_tflops"]
                    if "sdpa" in by_name
                    else None,
                }
            )
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
            "vs_best_of_sdpa_flex",
            "vs_sdpa",
        ],
    )
    return rows


if __name__ == "__main__":
    main()
