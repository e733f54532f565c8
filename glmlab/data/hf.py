"""The ``hf`` corpus: Hugging Face ``datasets`` over local files (json / jsonl / parquet /
csv / text / a saved Arrow dataset) or, where the network allows, a dataset name.

Nothing is held in memory: ``datasets`` memory-maps the Arrow data; tokenisation is its
parallel ``map`` (``num_proc`` processes, batches of documents split into sentences and
encoded with the tokenizer's batch call); the tokens stream into memory-mapped token
stores (glmlab/data/token_store.py), one per split, that every process of a node maps.
The split is by a hash of each text, as for the other corpora. Options
(``data.corpus_options``): ``path`` (a file, glob, directory of a saved dataset, or a dataset
name), ``format`` (json, parquet, csv, text, arrow; default from the extension), ``field``
(default ``text``), ``validation_fraction``, ``min_chars``, ``num_proc`` (default: the CPUs
this process may use), ``name`` and ``split`` (for a named dataset).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from glmlab.data.cache import cache_dir, cache_key
from glmlab.data.examples import ExampleSet
from glmlab.data.sentences import sentence_end_table, sentence_ends, split_sentences
from glmlab.data.token_store import ExampleWriter, open_store, store_exists, store_meta
from glmlab.data.tokenizer import GLMTokenizer
from glmlab.structures import TokenizedText

__all__ = ["HF_OPTIONS", "load_hf_dataset", "prepare_hf"]

log = logging.getLogger("glmlab")

HF_OPTIONS = (
    "path",
    "format",
    "field",
    "validation_fraction",
    "min_chars",
    "num_proc",
    "name",
    "split",
)
_FORMATS = {
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".text": "text",
    ".arrow": "arrow",
}
_FORMAT = 1  # bump when tokenisation or storage rules change


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ValueError(
            "data.corpus=hf needs the datasets package: pip install 'glmlab[hf]'"
        ) from None
    return datasets


def _hf_cache() -> str:
    """datasets' Arrow cache of local files: inside glmlab's (deleting it is safe)."""
    return str(cache_dir() / "hf")


def load_hf_dataset(
    path: str, *, format: str | None = None, name: str | None = None, split: str = "train"
) -> Any:
    """The dataset at ``path`` (see the module docstring), memory-mapped by ``datasets``."""
    datasets = _datasets()
    expanded = os.path.expanduser(path)
    if Path(expanded).is_dir() and (Path(expanded) / "dataset_info.json").exists():
        ds = datasets.load_from_disk(expanded)
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    files = sorted(glob.glob(expanded)) if any(c in expanded for c in "*?[") else [expanded]
    if all(Path(f).is_file() for f in files) and files:
        kind = format or _FORMATS.get(Path(files[0]).suffix.lower())
        if kind is None:
            raise ValueError(
                f"hf: cannot tell the format of {files[0]!r}; set data.corpus_options.format "
                f"to one of {sorted(set(_FORMATS.values()))}"
            )
        return datasets.load_dataset(kind, data_files=files, split="train", cache_dir=_hf_cache())
    if Path(expanded).exists() or "*" in expanded:
        raise ValueError(f"hf: no data files match {path!r}; set data.corpus_options.path")
    # A dataset name: the user's HF cache; needs the network unless it holds the dataset.
    return datasets.load_dataset(path, name, split=split)


def _is_validation(text: str, fraction: float) -> bool:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


# Per worker process: the tokenizer and its sentence-end table, built once.
_WORKER_TOKENIZERS: dict[str, tuple[GLMTokenizer, np.ndarray]] = {}


def _encode_batch(
    batch: dict[str, list[Any]], *, field: str, tokenizer_json: str, fraction: float, min_chars: int
) -> dict[str, list[Any]]:
    """``datasets.map`` function: sentence-split and encode a batch of documents."""
    key = hashlib.sha256(tokenizer_json.encode()).hexdigest()
    if key not in _WORKER_TOKENIZERS:
        from tokenizers import Tokenizer

        made = GLMTokenizer(Tokenizer.from_str(tokenizer_json))
        table = sentence_end_table(lambda i: made.decode([i]), made.vocab_size)
        _WORKER_TOKENIZERS[key] = (made, table)
    tok, table = _WORKER_TOKENIZERS[key]
    texts = [t if isinstance(t, str) else "" for t in batch[field]]
    per_doc = [split_sentences(t) if len(t) >= min_chars else [] for t in texts]
    flat = [s for sents in per_doc for s in sents]
    # The tokenizer's own batch call (what GLMTokenizer.encode_batch does, minus the arrays).
    encoded = tok.hf_tokenizer.encode_batch_fast(flat, add_special_tokens=False) if flat else []
    seqs = [e.ids for e in encoded]
    dtype = np.uint16 if tok.padded_vocab_size <= 65536 else np.int32  # a smaller Arrow file
    ids_out, ends_out, val_out = [], [], []
    pos = 0
    for text, sents in zip(texts, per_doc, strict=True):
        part = seqs[pos : pos + len(sents)]
        pos += len(sents)
        ids = np.fromiter(chain.from_iterable(part), dtype=dtype)
        ids_out.append(ids)
        # The reference's token rule, as tokenize_documents applies it to the other corpora.
        ends_out.append(sentence_ends(ids, table))
        val_out.append(_is_validation(text, fraction))
    return {"ids": ids_out, "ends": ends_out, "is_validation": val_out}


def _train_tokenizer(
    ds: Any, field: str, fraction: float, *, vocab_size: int, n_sentinels: int
) -> GLMTokenizer:
    def texts() -> Any:
        for batch in ds.iter(batch_size=1000):
            yield from (
                t for t in batch[field] if isinstance(t, str) and not _is_validation(t, fraction)
            )

    return GLMTokenizer.train(_Lazy(texts, len(ds)), vocab_size=vocab_size, n_sentinels=n_sentinels)


class _Lazy(Sequence):
    """A re-iterable, sized stream of texts (GLMTokenizer.train wants a Sequence)."""

    def __init__(self, make: Any, length: int) -> None:
        self.make, self.length = make, length

    def __iter__(self) -> Any:
        return self.make()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: Any) -> str:  # a stream: iterate it instead
        raise TypeError("a text stream supports iteration only")


def prepare_hf(
    options: dict[str, Any],
    *,
    vocab_size: int,
    n_sentinels: int,
    chunk_len: int,
    packing: bool,
    min_tokens: int,
    tokenizer_file: str | None = None,
) -> tuple[GLMTokenizer, ExampleSet, ExampleSet, str, dict[str, Any]]:
    """Tokenizer, train and validation sets, fingerprint and statistics of an hf corpus."""
    unknown = set(options) - set(HF_OPTIONS)
    if unknown:
        raise ValueError(
            f"corpus 'hf' does not accept option(s) {sorted(unknown)}; accepted: {sorted(HF_OPTIONS)}"
        )
    if not options.get("path"):
        raise ValueError("corpus 'hf' needs data.corpus_options.path (files, a folder or a name)")
    field = options.get("field", "text")
    fraction = float(options.get("validation_fraction", 0.05))
    min_chars = max(int(options.get("min_chars", 1)), 1)
    num_proc = options.get("num_proc") or len(os.sched_getaffinity(0))
    ds = load_hf_dataset(
        options["path"],
        format=options.get("format"),
        name=options.get("name"),
        split=options.get("split", "train"),
    )
    if field not in ds.column_names:
        raise ValueError(f"hf: the dataset has no column {field!r}; columns: {ds.column_names}")
    fingerprint = cache_key("hf", ds._fingerprint, field, fraction, min_chars)
    if tokenizer_file:
        tokenizer = GLMTokenizer.load(tokenizer_file)
    else:
        path = (
            cache_dir() / "tokenizers" / cache_key("hf-tok", fingerprint, vocab_size, n_sentinels)
        )
        path = path / "tokenizer.json"
        if path.is_file():
            tokenizer = GLMTokenizer.load(path)
        else:
            tokenizer = _train_tokenizer(
                ds, field, fraction, vocab_size=vocab_size, n_sentinels=n_sentinels
            )
            tokenizer.save(path)
    tok_json = tokenizer.hf_tokenizer.to_str()
    key = cache_key("hf-examples", _FORMAT, fingerprint, tok_json, chunk_len, packing, min_tokens)
    folder = cache_dir() / "examples" / f"hf-{key}"
    splits = {s: folder / s for s in ("train", "validation")}
    if not all(store_exists(p) for p in splits.values()):
        t0 = time.perf_counter()
        tokenized = ds.map(
            _encode_batch,
            batched=True,
            batch_size=256,
            num_proc=num_proc if num_proc > 1 else None,
            remove_columns=ds.column_names,
            fn_kwargs={
                "field": field,
                "tokenizer_json": tok_json,
                "fraction": fraction,
                "min_chars": min_chars,
            },
            cache_file_name=str(folder.parent / f".hf-{key}-tokens.arrow"),
            desc="tokenizing",
        )
        writers = {
            s: ExampleWriter(
                p,
                chunk_len=chunk_len,
                packing=packing,
                min_tokens=min_tokens,
                vocab_size=tokenizer.padded_vocab_size,
            )
            for s, p in splits.items()
        }
        try:
            for batch in tokenized.with_format("numpy").iter(batch_size=1000):
                for ids, ends, val in zip(
                    batch["ids"], batch["ends"], batch["is_validation"], strict=True
                ):
                    doc = TokenizedText(np.asarray(ids, np.int64), np.asarray(ends, np.int64))
                    writers["validation" if val else "train"].add(doc)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for w in writers.values():
            w.close(seconds=round(time.perf_counter() - t0, 2))
        for f in tokenized.cache_files:  # the tokens now live in the stores
            Path(f["filename"]).unlink(missing_ok=True)
    sets = {s: open_store(p) for s, p in splits.items()}
    stats = {s: store_meta(p) for s, p in splits.items()}
    return tokenizer, sets["train"], sets["validation"], key, stats
