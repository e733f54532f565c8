"""Corpus preparation at scale: the ``hf`` corpus on generated JSON-lines corpora.

For each size (MB of text) a corpus is generated (documents of 3-60 sentences drawn from
the stdlib docstrings, deterministic), then prepared in a fresh process with an empty
cache: documents stream in batches through the tokenizer's batch call and into the
memory-mapped stores (glmlab/data/hf.py, glmlab/data/store_builder.py), with a fixed
tokenizer (``data.tokenizer_file``: training a tokenizer is a separate cost). The reference
is the tokenizer's own batch encoding (``encode_batch_fast``, whole documents, batches of
1000, the same threads) of the same text, also in a fresh process.

The machine may be shared, so the two are measured under the same load: the reference
encodes the first half of the documents just before the preparation and the second half
just after it, and its time is the sum of both; the load average is recorded around each
step, and so is every process's CPU time (user + system, all threads), which depends less
on what else runs. Reported per size: preparation MB/s, reference MB/s, their ratio (and
the ratio of CPU times), the preparation process's peak RSS (ru_maxrss; and the peaks of
its anonymous part, the memory it holds itself, and of its file-backed part, mapped pages
the OS shares and can drop).

    python benchmarks/data.py --sizes 100 1000        # docs/DATA.md's numbers
    python benchmarks/data.py --sizes 1 --json --warn-only    # a smoke test

Targets (issue 13), checked at the end: every size's ratio >= 0.8, and no size's peak RSS
above the smallest size's by more than 5% (+16 MiB of noise). A miss prints ``FAIL: ...``
and exits 1 (``--warn-only``: exits 0).
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
from glmlab.config.schema import DataConfig

MB = 1_000_000
MIN_RATIO = 0.8
RSS_GROWTH = (1.05, 16.0)  # allowed: x the smallest size's peak, + MiB
# The data defaults of a run (DataConfig), chunks of 448 tokens (512 less Part B's 12.5%);
# vocab_size is the tokenizer file's (8,192) whatever is asked here.
SETTINGS = {
    "vocab_size": DataConfig.vocab_size,
    "n_sentinels": DataConfig.n_sentinels,
    "chunk_len": 448,
    "packing": DataConfig.packing,
    "min_tokens": DataConfig.min_tokens,
}


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
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


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
    from glmlab.data.pipeline import prepare_data

    sampler = _MemorySampler()
    sampler.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    data = prepare_data(
        "hf",
        {"path": str(corpus), "num_proc": num_proc},
        **SETTINGS,
        tokenizer_file=str(tokenizer),
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sampler.done.set()
    sampler.join()
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "tokens": int(data.train.n_tokens + data.validation.n_tokens),
        "ids_dtype": str(data.train.ids.dtype),
        "peak_anon_mb": round(sampler.peak["RssAnon"] / 1024, 1),
        "peak_file_mb": round(sampler.peak["RssFile"] / 1024, 1),
        **_peak_rss_mb(),
    }


def encode_reference(corpus: Path, tokenizer: Path, half: int) -> dict[str, float]:
    """Wall and CPU seconds of the tokenizer's own batch encoding of one half (0: the
    first, 1: the second) of the documents, batches of 1000; reading is not timed."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    with corpus.open(encoding="utf-8") as f:
        n_docs = sum(1 for _ in f)
    lo, hi = (0, n_docs // 2) if half == 0 else (n_docs // 2, n_docs)
    wall = cpu = 0.0
    text_bytes = 0
    with corpus.open(encoding="utf-8") as f:
        for _ in range(lo):
            next(f)
        left = hi - lo
        while left > 0:
            batch = [json.loads(next(f))["text"] for _ in range(min(1000, left))]
            left -= len(batch)
            text_bytes += sum(len(t.encode("utf-8")) for t in batch)
            t0, c0 = time.perf_counter(), time.process_time()
            tok.encode_batch_fast(batch, add_special_tokens=False)
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
    return {"seconds": wall, "cpu_seconds": cpu, "text_bytes": text_bytes}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(corpus: Path, tokenizer: Path, cache: Path, num_proc: int) -> dict[str, Any]:
    """Reference (first half), preparation, reference (second half): one row."""
    env = {**os.environ, "GLMLAB_CACHE": str(cache), "HF_DATASETS_CACHE": str(cache / "hf")}
    if num_proc == 1:  # the same threads for both: one
        env["TOKENIZERS_PARALLELISM"] = "false"
    loads = [_load()]
    ref = [_child(["--_reference", str(corpus), str(tokenizer), "0"], env)]
    loads.append(_load())
    common = ["--num-proc", str(num_proc)]
    prep = _child([*common, "--_prepare", str(corpus), str(tokenizer)], env)
    loads.append(_load())
    ref.append(_child(["--_reference", str(corpus), str(tokenizer), "1"], env))
    loads.append(_load())
    text_bytes = ref[0]["text_bytes"] + ref[1]["text_bytes"]
    ref_s = ref[0]["seconds"] + ref[1]["seconds"]
    ref_cpu = ref[0]["cpu_seconds"] + ref[1]["cpu_seconds"]
    prep_mb_s, ref_mb_s = text_bytes / MB / prep["seconds"], text_bytes / MB / ref_s
    return {
        "size_mb": round(text_bytes / MB, 1),
        "num_proc": num_proc,
        "prepare_mb_per_s": round(prep_mb_s, 2),
        "tokenizer_batch_mb_per_s": round(ref_mb_s, 2),
        "ratio": round(prep_mb_s / ref_mb_s, 3),
        "reference_seconds": round(ref_s, 2),
        "reference_cpu_seconds": round(ref_cpu, 2),
        "cpu_ratio": round(ref_cpu / prep["cpu_seconds"], 3),
        **prep,
        "load_1min": loads,  # before, between and after the three steps
    }


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """``FAIL: ...`` / ``ok: ...`` lines for the targets of issue 13."""
    out = []
    for r in rows:
        ok = r["ratio"] >= MIN_RATIO
        out.append(
            f"{'ok' if ok else 'FAIL'}: {r['size_mb']:g} MB: preparation {r['prepare_mb_per_s']} "
            f"MB/s = {r['ratio']:.2f}x the tokenizer's batch encoding "
            f"({r['tokenizer_batch_mb_per_s']} MB/s; target >= {MIN_RATIO}x)"
        )
    if len(rows) < 2:
        out.append("not checked: peak RSS against the corpus size needs two sizes")
        return out
    base = min(rows, key=lambda r: r["size_mb"])
    limit = base["peak_rss_mb"] * RSS_GROWTH[0] + RSS_GROWTH[1]
    for r in rows:
        if r is base:
            continue
        ok = r["peak_rss_mb"] <= limit
        out.append(
            f"{'ok' if ok else 'FAIL'}: {r['size_mb']:g} MB: peak RSS {r['peak_rss_mb']} MiB vs "
            f"{base['peak_rss_mb']} MiB at {base['size_mb']:g} MB (limit {limit:.0f} MiB)"
        )
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[10, 100], help="MB of text")
    p.add_argument("--num-proc", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--workdir", default=None, help="where corpora go (default: a temp dir)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--warn-only", action="store_true", help="print FAIL lines, exit 0")
    p.add_argument("--_prepare", nargs=2, help=argparse.SUPPRESS)  # corpus, tokenizer
    p.add_argument("--_reference", nargs=3, help=argparse.SUPPRESS)  # corpus, tokenizer, half
    args = p.parse_args(argv)
    if args._prepare:  # a child process: one preparation, measured alone
        print(json.dumps(prepare(Path(args._prepare[0]), Path(args._prepare[1]), args.num_proc)))
        return []
    if args._reference:  # a child process: half of the reference encoding
        corpus, tok, half = args._reference
        print(json.dumps(encode_reference(Path(corpus), Path(tok), int(half))))
        return []

    from glmlab.data.corpus import load_corpus
    from glmlab.data.tokenizer import GLMTokenizer

    work = Path(args.workdir or tempfile.mkdtemp(prefix="glmlab-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = work / "tokenizer.json"
    if not tokenizer.exists():
        texts = load_corpus("stdlib_docs").train
        GLMTokenizer.train(texts, vocab_size=8192, n_sentinels=SETTINGS["n_sentinels"]).save(
            tokenizer
        )
    rows = []
    for size in args.sizes:
        corpus = work / f"corpus_{size:g}MB.jsonl"
        if not corpus.exists():
            generate(corpus, size)
        cache = work / f"cache_{size:g}MB"
        if cache.exists():  # an empty cache: the preparation is measured, not a lookup
            import shutil

            shutil.rmtree(cache)
        row = {**measure(corpus, tokenizer, cache, args.num_proc), **environment()}
        rows.append(row)
        columns = ["size_mb", "prepare_mb_per_s", "tokenizer_batch_mb_per_s", "ratio"]
        more = ["cpu_ratio", "peak_rss_mb", "peak_anon_mb", "peak_file_mb", "seconds"]
        emit([row], args.json, [*columns, *more])
        sys.stdout.flush()
    lines = verdicts(rows)
    for line in lines:
        print(line, file=sys.stderr)
    failed = any(line.startswith("FAIL") for line in lines)
    if failed and not args.warn_only:
        sys.exit(1)
    return rows


if __name__ == "__main__":
    main()
