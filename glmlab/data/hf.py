"""The ``hf`` corpus: Hugging Face ``datasets`` over local files (json / jsonl / parquet /
csv / text / a saved Arrow dataset) or, where the network allows, a dataset name.

Nothing is held in memory and nothing is copied: documents stream in batches of
:data:`~glmlab.data.store_builder.BATCH_DOCS` (JSON Lines, parquet and text files read by
glmlab/data/file_batches.py as ``datasets`` would read them; csv and Arrow files streamed by
``datasets``; a saved dataset or a named one
memory-mapped by ``datasets``) through :class:`~glmlab.data.store_builder.SplitStores`: the
tokenizer's own batch call (parallel in Rust) and numpy chunking, straight into
memory-mapped token stores (glmlab/data/token_store.py), one per split, that every process
of a node maps. The split is by a hash of each text, as for the other corpora. Options
(``data.corpus_options``): ``path`` (a file, glob, directory of a saved dataset, or a dataset
name), ``format`` (json, parquet, csv, text, arrow; default from the extension), ``field``
(default ``text``), ``validation_fraction``, ``min_chars``, ``num_proc`` (1: encode in one
thread; otherwise the tokenizer's threads, one per CPU), ``max_line_mb`` (64: a longer
JSON line is refused before it is read whole), ``name`` and ``split`` (a named dataset).
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from glmlab.data.cache import cache_dir, cache_key
from glmlab.data.corpus import SPLITS, TEST_FRACTION, check_test_fraction, split_of
from glmlab.data.examples import ExampleSet
from glmlab.data.file_batches import READERS, is_json_lines
from glmlab.data.store_builder import BATCH_DOCS, SplitStores
from glmlab.data.token_store import open_store, store_exists, store_meta
from glmlab.data.tokenizer import GLMTokenizer

__all__ = ["HF_OPTIONS", "load_hf_dataset", "prepare_hf"]

log = logging.getLogger("glmlab")

HF_OPTIONS = (
    "path",
    "format",
    "field",
    "validation_fraction",
    "test_fraction",
    "min_chars",
    "num_proc",
    "name",
    "split",
    "max_line_mb",
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
_FORMAT = 3  # bump when tokenisation or storage rules change (2: streamed, own fingerprint; 3: a test split)


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
    """The dataset at ``path`` (see the module docstring) as a ``datasets`` Dataset,
    memory-mapped (local files are converted into datasets' Arrow cache first)."""
    datasets = _datasets()
    files = _local_files(path)
    if files is not None:
        kind = _file_format(files, format)
        return datasets.load_dataset(kind, data_files=files, split="train", cache_dir=_hf_cache())
    expanded = os.path.expanduser(path)
    if Path(expanded).is_dir():
        ds = datasets.load_from_disk(expanded)
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    # A dataset name: the user's HF cache; needs the network unless it holds the dataset.
    return datasets.load_dataset(path, name, split=split)


def _local_files(path: str) -> list[str] | None:
    """The data files ``path`` names (a file or a glob), or None for a saved dataset folder
    or a dataset name; a glob or path that matches nothing is a clear error."""
    expanded = os.path.expanduser(path)
    if Path(expanded).is_dir() and (Path(expanded) / "dataset_info.json").exists():
        return None
    files = sorted(glob.glob(expanded)) if any(c in expanded for c in "*?[") else [expanded]
    if files and all(Path(f).is_file() for f in files):
        return files
    if Path(expanded).exists() or "*" in expanded:
        raise ValueError(f"hf: no data files match {path!r}; set data.corpus_options.path")
    return None


def _file_format(files: list[str], format: str | None) -> str:
    kind = format or _FORMATS.get(Path(files[0]).suffix.lower())
    if kind is None:
        raise ValueError(
            f"hf: cannot tell the format of {files[0]!r}; set data.corpus_options.format "
            f"to one of {sorted(set(_FORMATS.values()))}"
        )
    return kind


def _dataset_batches(ds: Any, field: str) -> Iterator[list[Any]]:
    """The ``field`` values of a ``datasets`` Dataset or IterableDataset, in batches."""
    names = ds.column_names
    if names is not None:
        if field not in names:
            raise ValueError(f"hf: the dataset has no column {field!r}; columns: {names}")
        ds = ds.select_columns([field])
    for batch in ds.iter(batch_size=BATCH_DOCS):
        if field not in batch:  # a stream whose columns were unknown up front
            raise ValueError(f"hf: the dataset has no column {field!r}; columns: {sorted(batch)}")
        yield batch[field]


class _Source:
    """Where an hf corpus's documents come from: a fingerprint of the data, and a way to
    stream its ``field`` values in batches (as often as asked: tokenizer training reads
    them once more)."""

    def __init__(self, options: dict[str, Any], field: str) -> None:
        path = options["path"]
        self.field = field
        limit = options.get("max_line_mb", 64.0)
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
            raise ValueError(f"data.corpus_options.max_line_mb={limit!r}: must be a number > 0")
        self.max_line_mb = float(limit)
        files = _local_files(path)
        self.files, self.kind, self.ds = files, None, None
        if files is not None:
            self.kind = _file_format(files, options.get("format"))
            if self.kind == "json" and not all(is_json_lines(f) for f in files):
                self.kind = "json-document"
            stamp = [
                (os.path.abspath(f), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files
            ]
            self.fingerprint = cache_key("hf-files", self.kind, stamp)
        else:
            self.ds = load_hf_dataset(
                path, name=options.get("name"), split=options.get("split", "train")
            )
            self.fingerprint = self.ds._fingerprint

    def batches(self) -> Iterator[list[Any]]:
        if self.kind in READERS:  # JSON Lines, parquet, text: read here, in batches
            return READERS[self.kind](self.files, self.field, self.max_line_mb)
        if self.ds is None:
            datasets = _datasets()
            if self.kind == "json-document":  # one JSON document: datasets reads it whole
                self.ds = datasets.load_dataset(
                    "json", data_files=self.files, split="train", cache_dir=_hf_cache()
                )
            else:  # csv / arrow: streamed by datasets, no Arrow copy
                self.ds = datasets.load_dataset(
                    self.kind, data_files=self.files, split="train", streaming=True
                )
        return _dataset_batches(self.ds, self.field)


def _train_tokenizer(
    source: _Source, fractions: tuple[float, float], *, vocab_size: int, n_sentinels: int
) -> GLMTokenizer:
    def texts() -> Any:
        for batch in source.batches():
            yield from (
                t for t in batch if isinstance(t, str) and split_of(t, *fractions) == "train"
            )

    return GLMTokenizer.train(_Lazy(texts), vocab_size=vocab_size, n_sentinels=n_sentinels)


class _Lazy(Sequence):
    """A re-iterable stream of texts (GLMTokenizer.train wants a Sequence); its length is
    unknown (0: the trainer uses it for progress reports only)."""

    def __init__(self, make: Any) -> None:
        self.make = make

    def __iter__(self) -> Any:
        return self.make()

    def __len__(self) -> int:
        return 0

    def __getitem__(self, i: Any) -> str:  # a stream: iterate it instead
        raise TypeError("a text stream supports iteration only")


def _write_stores(
    source: _Source,
    stores: SplitStores,
    *,
    fractions: tuple[float, float],
    min_chars: int,
) -> None:
    """Stream every document of ``source`` into the split its text's hash picks."""
    for batch in source.batches():
        texts = [t if isinstance(t, str) and len(t) >= min_chars else "" for t in batch]
        split: dict[str, list[str]] = {s: [] for s in SPLITS}
        for raw, text in zip(batch, texts, strict=True):
            # The split hashes the text as given (a None or short text counts as a document).
            key = raw if isinstance(raw, str) else ""
            split[split_of(key, *fractions)].append(text)
        for name, docs in split.items():
            stores.add(name, docs)


def prepare_hf(
    options: dict[str, Any],
    *,
    vocab_size: int,
    n_sentinels: int,
    chunk_len: int,
    packing: bool,
    min_tokens: int,
    tokenizer_file: str | None = None,
) -> tuple[GLMTokenizer, ExampleSet, ExampleSet, ExampleSet, str, dict[str, Any]]:
    """Tokenizer, train, validation and test sets, fingerprint and statistics of an hf
    corpus."""
    unknown = set(options) - set(HF_OPTIONS)
    if unknown:
        raise ValueError(
            f"corpus 'hf' does not accept option(s) {sorted(unknown)}; accepted: {sorted(HF_OPTIONS)}"
        )
    if not options.get("path"):
        raise ValueError("corpus 'hf' needs data.corpus_options.path (files, a folder or a name)")
    field = options.get("field", "text")
    fraction = float(options.get("validation_fraction", 0.05))
    test_fraction = check_test_fraction(options.get("test_fraction", TEST_FRACTION), options)
    min_chars = max(int(options.get("min_chars", 1)), 1)
    num_proc = options.get("num_proc") or len(os.sched_getaffinity(0))
    source = _Source(options, field)
    fingerprint = cache_key("hf", source.fingerprint, field, fraction, test_fraction, min_chars)
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
                source, (fraction, test_fraction), vocab_size=vocab_size, n_sentinels=n_sentinels
            )
            tokenizer.save(path)
    tok_json = tokenizer.hf_tokenizer.to_str()
    key = cache_key("hf-examples", _FORMAT, fingerprint, tok_json, chunk_len, packing, min_tokens)
    folder = cache_dir() / "examples" / f"hf-{key}"
    splits = {s: folder / s for s in SPLITS}
    if not all(store_exists(p) for p in splits.values()):
        t0 = time.perf_counter()
        stores = SplitStores(
            splits,
            tokenizer,
            chunk_len=chunk_len,
            packing=packing,
            min_tokens=min_tokens,
            threads=int(num_proc),
        )
        try:
            _write_stores(source, stores, fractions=(fraction, test_fraction), min_chars=min_chars)
        except BaseException:
            stores.abort()
            raise
        stores.close(seconds=round(time.perf_counter() - t0, 2))
    sets = {s: open_store(p) for s, p in splits.items()}
    stats = {s: store_meta(p) for s, p in splits.items()}
    return tokenizer, sets["train"], sets["validation"], sets["test"], key, stats
