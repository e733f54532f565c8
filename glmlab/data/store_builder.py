"""Texts in, memory-mapped token stores out, in bounded batches (every corpus uses this).

:class:`SplitStores` encodes each batch of documents whole with a
:class:`~glmlab.data.sentence_encoder.SentenceEncoder` (the tokenizer's own batch call,
parallel in Rust), cuts and filters the batch's pieces with numpy
(:func:`~glmlab.data.pieces.batch_pieces`) and appends them to one
:class:`~glmlab.data.token_store.ExampleWriter` per split. The stores are byte for byte
those of :func:`~glmlab.data.examples.tokenize_documents`, :func:`build_examples` and
:meth:`ExampleWriter.add` (``tests/test_data_fast.py``); memory holds one batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glmlab.data.pieces import batch_pieces
from glmlab.data.sentence_encoder import SentenceEncoder
from glmlab.data.token_store import ExampleWriter
from glmlab.data.tokenizer import GLMTokenizer

__all__ = ["BATCH_DOCS", "SplitStores"]

BATCH_DOCS = 1000  # documents per batch call: bounded memory, enough work for every thread


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """``threads=1``: the tokenizer encodes in this thread only (its Rust thread pool is
    switched off by TOKENIZERS_PARALLELISM, which it reads at every call)."""
    if threads != 1:
        yield
        return
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


class SplitStores:
    """One token store per split (``folders``: split name -> store folder), filled by
    :meth:`add`; published by :meth:`close`, removed by :meth:`abort` (a context manager
    does either)."""

    def __init__(
        self,
        folders: dict[str, Path],
        tokenizer: GLMTokenizer,
        *,
        chunk_len: int,
        packing: bool,
        min_tokens: int,
        threads: int | None = None,
    ) -> None:
        self.encoder = SentenceEncoder(tokenizer)
        self.chunk_len, self.min_tokens, self.threads = chunk_len, min_tokens, threads
        self.writers: dict[str, ExampleWriter] = {}
        try:
            for split, folder in folders.items():
                self.writers[split] = ExampleWriter(
                    folder,
                    chunk_len=chunk_len,
                    packing=packing,
                    min_tokens=min_tokens,
                    vocab_size=tokenizer.padded_vocab_size,
                )
        except BaseException:
            self.abort()
            raise

    def add(self, split: str, texts: Sequence[str]) -> None:
        """Append ``texts`` (documents, in order) to ``split``'s store."""
        if not texts:
            return
        with _threads(self.threads):
            ids, lengths = self.encoder.encode(texts)
        pieces = batch_pieces(
            ids,
            lengths,
            self.encoder.end_table,
            chunk_len=self.chunk_len,
            min_tokens=self.min_tokens,
        )
        self.writers[split].add_pieces(pieces, len(texts))

    def close(self, **stats: Any) -> dict[str, Path]:
        """Publish every store (``stats`` go into each meta.json); their folders."""
        return {split: w.close(**stats) for split, w in self.writers.items()}

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()

    def __enter__(self) -> SplitStores:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
