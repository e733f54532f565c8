"""Corpus preparation at scale: the ``hf`` corpus on generated JSON-lines corpora.

For each size (MB of text) a corpus is generated (documents of 3-60 sentences drawn from
the stdlib docstrings, deterministic), then prepared in a fresh process with an empty
cache: ``datasets`` loads it, its parallel ``map`` splits sentences and encodes them with a
fixed tokenizer (``data.tokenizer_file``: training a tokenizer is a separate cost), and the
tokens stream into the memory-mapped stores. Reported per size: preparation MB/s, the
peak RSS of the main process (and its anonymous part, the memory it holds itself, and
its file-backed part: mapped Arrow and store pages, which the OS shares and can drop)
and of the largest ``map`` worker, and, as the reference,
the tokenizer's own batch encoding (``encode_batch_fast`` over the same texts, batches of
1000 documents, all cores) in MB/s.

    python benchmarks/data.py --sizes 10 100 --json          # docs/DATA.md's numbers
    python benchmarks/data.py --sizes 1 --json               # a smoke test

Targets (issue 13): peak RSS independent of the corpus size; preparation >= 0.8x the
tokenizer's own batch encoding on the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit, environment

MB = 1_000_000


def generate(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write a JSON-lines corpus of about ``megabytes`` MB of text; return its text bytes."""
    from glmlab.data.corpus import load_corpus
    from glmlab.data.sentences import split_sentences

    pool = [s for doc in load_corpus("stdlib_docs").train for s in split_sentences(doc)]
    rng = np.random.default_rng(seed)
    target, written = int(megabytes * MB), 0
    with path.open("w", encoding="utf-8") as f:
        while written < target:
            picks = rng.integers(0, len(pool), size=int(rng.integers(3, 61)))
            text = "".join(pool[i] for i in picks)
            f.write(json.dumps({"text": text}) + "\n")
            written += len(text.encode("utf-8"))
    return written


def _peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_worker_rss_mb": round(children, 1)}


class _MemorySampler(threading.Thread):
    """Peaks of this process's anonymous (its own) and file-backed (mapped files, shared
    with the page cache) resident memory, from /proc/self/status every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            with open("/proc/self/status", encoding="ascii") as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(line.split()[1]))


def prepare(corpus: Path, tokenizer: Path, num_proc: int) -> dict[str, Any]:
    """Prepare ``corpus`` as the hf corpus (in this process, with the current cache)."""
    from glmlab.config import DataConfig
    from glmlab.data.pipeline import prepare_data

    sampler = _MemorySampler()
    sampler.start()
    t0 = time.perf_counter()
    data = prepare_data(
        "hf",
        {"path": str(corpus), "num_proc": num_proc},
        vocab_size=DataConfig.vocab_size,  # the run's defaults (the tokenizer file decides)
        n_sentinels=DataConfig.n_sentinels,
        chunk_len=448,
        packing=DataConfig.packing,
        min_tokens=DataConfig.min_tokens,
        tokenizer_file=str(tokenizer),
    )
    seconds = time.perf_counter() - t0
    sampler.done.set()
    sampler.join()
    return {
        "seconds": round(seconds, 2),
        "tokens": int(data.train.n_tokens + data.validation.n_tokens),
        "ids_dtype": str(data.train.ids.dtype),
        "peak_anon_mb": round(sampler.peak["RssAnon"] / 1024, 1),
        "peak_file_mb": round(sampler.peak["RssFile"] / 1024, 1),
        **_peak_rss_mb(),
    }


def encode_reference(corpus: Path, tokenizer: Path) -> float:
    """Seconds for the tokenizer's own batch encoding of every document (all cores)."""
    from glmlab.data.tokenizer import GLMTokenizer

    tok = GLMTokenizer.load(tokenizer).hf_tokenizer
    total = 0.0
    with corpus.open(encoding="utf-8") as f:
        while True:
            batch = [json.loads(line)["text"] for _, line in zip(range(1000), f, strict=False)]
            if not batch:
                return total
            t0 = time.perf_counter()
            tok.encode_batch_fast(batch, add_special_tokens=False)
            total += time.perf_counter() - t0


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[10, 100], help="MB of text")
    p.add_argument("--num-proc", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--workdir", default=None, help="where corpora go (default: a temp dir)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--_prepare", nargs=2, help=argparse.SUPPRESS)  # corpus, tokenizer
    args = p.parse_args(argv)
    if args._prepare:  # the child process: one preparation, measured alone
        print(json.dumps(prepare(Path(args._prepare[0]), Path(args._prepare[1]), args.num_proc)))
        return []

    from glmlab.config import DataConfig
    from glmlab.data.corpus import load_corpus
    from glmlab.data.tokenizer import GLMTokenizer

    work = Path(args.workdir or tempfile.mkdtemp(prefix="glmlab-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = work / "tokenizer.json"
    if not tokenizer.exists():
        texts = load_corpus("stdlib_docs").train
        GLMTokenizer.train(texts, vocab_size=8192, n_sentinels=DataConfig.n_sentinels).save(
            tokenizer
        )
    rows = []
    for size in args.sizes:
        corpus = work / f"corpus_{size:g}MB.jsonl"
        text_bytes = generate(corpus, size)
        cache = work / f"cache_{size:g}MB"
        env = {**os.environ, "GLMLAB_CACHE": str(cache), "HF_DATASETS_CACHE": str(cache / "hf")}
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--num-proc",
                str(args.num_proc),
                "--_prepare",
                str(corpus),
                str(tokenizer),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        reference_s = encode_reference(corpus, tokenizer)
        prep_mb_s = text_bytes / MB / measured["seconds"]
        ref_mb_s = text_bytes / MB / reference_s
        row = {
            "size_mb": round(text_bytes / MB, 1),
            "num_proc": args.num_proc,
            "prepare_mb_per_s": round(prep_mb_s, 2),
            "tokenizer_batch_mb_per_s": round(ref_mb_s, 2),
            "ratio": round(prep_mb_s / ref_mb_s, 2),
            **measured,
            **environment(),
        }
        rows.append(row)
        columns = ["size_mb", "prepare_mb_per_s", "tokenizer_batch_mb_per_s", "ratio"]
        memory = ["peak_rss_mb", "peak_anon_mb", "peak_file_mb", "peak_worker_rss_mb"]
        emit([row], args.json, [*columns, *memory, "seconds"])
    return rows


if __name__ == "__main__":
    main()
