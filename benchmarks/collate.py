"""Collated GLM samples per second on one CPU core: the data pipeline's throughput.

Per mode, rows of random token ids (``seq_len`` minus the Part B reserve, one text per row,
so one GLM sample per row) go through the trainer's path: span sampler, ``build_glm_sample``,
``collate_rows``, the checked ``glm`` mask builder and the ``xformers`` backend's host-side
plan (its block offsets and gather indices). Modes: ``token``, ``sentence``, ``document``
and ``mix`` (0.5 token / 0.3 sentence / 0.2 document: the reference code's
``bert_prob`` / ``gap_sentence_prob`` defaults, GLM-10B's mix).

    python benchmarks/collate.py                    # table, 5 s per mode
    python benchmarks/collate.py --seconds 20 --json  # one JSON object per mode

Target (docs/PERFORMANCE.md): >= 8,000 samples/s token-level at L=512, batch 16.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit, environment
from glmlab.objective.batches import BatchSource, PrepareHost
from glmlab.objective.glm import GLMObjective
from glmlab.plugin.guards import checked_mask_builder
from glmlab.plugin.registry import get_registry
from glmlab.structures import SpecialTokens, TokenizedText

MODES: dict[str, dict[str, float]] = {
    "token": {"token": 1.0},
    "sentence": {"sentence": 1.0},
    "document": {"document": 1.0},
    "mix": {"token": 0.5, "sentence": 0.3, "document": 0.2},
}
SPECIALS = SpecialTokens(
    pad=0, mask=1, smask=2, gmask=3, sop=4, eop=5, sentinel_masks=(), sentinel_sops=()
)
VOCAB = 50_000
PART_B_RESERVE = 0.125  # conf/data: part_b_reserve


def random_texts(n: int, length: int, vocab: int, seed: int = 0) -> list[list[TokenizedText]]:
    """``n`` one-text rows of random ids below ``vocab``, with sentences of 8-40 tokens."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        ids = rng.integers(len(SPECIALS.all_ids), vocab, size=length)
        ends = np.cumsum(rng.integers(8, 41, size=length // 8))
        rows.append([TokenizedText(ids, np.append(ends[ends < length], length))])
    return rows


def make_source(
    mode: str,
    *,
    seq_len: int,
    batch_size: int,
    n_texts: int,
    prepare_host: PrepareHost | None,
    vocab: int = VOCAB,
) -> BatchSource:
    """The trainer's batch source for ``mode`` over random texts."""
    registry = get_registry()
    samplers = [(name, registry.create("span_sampler", name), w) for name, w in MODES[mode].items()]
    return BatchSource(
        random_texts(n_texts, int(seq_len * (1 - PART_B_RESERVE)), vocab),
        GLMObjective(samplers, SPECIALS, shuffle_spans=True),
        mask_builder=checked_mask_builder("glm"),
        batch_size=batch_size,
        seq_len=seq_len,
        pad_id=SPECIALS.pad,
        seed=0,
        prepare_host=prepare_host,
    )


def measure(source: BatchSource, seconds: float) -> dict[str, Any]:
    """Build batches 0, 1, ... for ``seconds``; samples = GLM samples (segments) built."""
    for i in range(3):  # warm caches (the epoch permutation, first allocations)
        source.batch(i)
    samples = batches = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds or batches == 0:
        samples += len(source.batch(batches).layout.segments)
        batches += 1
    cpu = time.process_time() - cpu_start
    return {
        "samples_per_s": samples / elapsed,
        "batches_per_s": batches / elapsed,
        "samples": samples,
        "seconds": elapsed,
        # Per second of this process's CPU time: close to samples_per_s on an idle core,
        # higher when other processes take the core (then samples_per_s is understated).
        "samples_per_cpu_s": samples / max(cpu, 1e-9),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="measuring time per mode")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--texts", type=int, default=4096, help="size of the random example set")
    p.add_argument(
        "--core", type=int, default=None, help="CPU to pin to (default: the first allowed)"
    )
    p.add_argument("--profile", action="store_true", help="cProfile each mode to stderr")
    p.add_argument("--json", action="store_true", help="one JSON object per mode")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    core = min(os.sched_getaffinity(0)) if args.core is None else args.core
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    env = environment()
    # The xformers backend's prepare_host: part of every batch's cost where it runs.
    prepare_host = get_registry().create("attention", "xformers").prepare_host
    rows = []
    for mode in args.modes:
        source = make_source(
            mode,
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            n_texts=args.texts,
            prepare_host=prepare_host,
        )
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        result = measure(source, args.seconds)
        if profiler:
            profiler.disable()
            print(f"== {mode}", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)
        rows.append(
            {
                "benchmark": "collate",
                "mode": mode,
                "seq_len": args.seq_len,
                "batch_size": args.batch_size,
                "core": core,
                "prepare_host": "xformers",
                **result,
                **env,
            }
        )
    emit(rows, args.json, ["mode", "samples_per_s", "samples_per_cpu_s", "samples", "seconds"])
    return rows


if __name__ == "__main__":
    main()
