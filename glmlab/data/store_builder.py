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
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from glmlab.data.pieces import batch_pieces
from glmlab.data.sentence_encoder import SentenceEncoder
from glmlab.data.token_store import ExampleWriter, PublishOnExit
from glmlab.data.tokenizer import GLMTokenizer

__all__ = ["BATCH_DOCS", "IN_FLIGHT", "SplitStores"]

BATCH_DOCS = 1000  # documents per batch call: bounded memory, enough work for every thread
IN_FLIGHT = 2  # batches encoding ahead of the one being written


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


class SplitStores(PublishOnExit):
    """One token store per split (``folders``: split name -> store folder), filled by
    :meth:`add`; published by :meth:`close`, removed by :meth:`abort` (a context manager
    does either).

    Encoding runs in a helper thread, :data:`IN_FLIGHT` batches ahead: the tokenizer's
    batch call releases the GIL, so reading, hashing, chunking and writing in the caller's
    thread overlap with it (the Python work would otherwise leave the cores idle). Batches
    are written in the order they were added.
    """

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
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glmlab-encode")
        self._pending: deque[tuple[str, Future, int]] = deque()
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

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        with _threads(self.threads):
            return self.encoder.encode(texts)

    def add(self, split: str, texts: Sequence[str]) -> None:
        """Append ``texts`` (documents, in order) to ``split``'s store."""
        if split not in self.writers:
            raise KeyError(f"no store for split {split!r}; splits: {sorted(self.writers)}")
        if not texts:
            return
        future = self._pool.submit(self._encode, list(texts))
        self._pending.append((split, future, len(texts)))
        while len(self._pending) > IN_FLIGHT:
            self._write_next()

    def _write_next(self) -> None:
        split, future, n_docs = self._pending.popleft()
        ids, lengths = future.result()
        pieces = batch_pieces(
            ids,
            lengths,
            self.encoder.end_table,
            chunk_len=self.chunk_len,
            min_tokens=self.min_tokens,
        )
        self.writers[split].add_pieces(pieces, n_docs)

    def close(self, **stats: Any) -> dict[str, Path]:
        """Write what is still encoding and publish every store (``stats`` go into each
        meta.json); their folders. On a failure nothing is published."""
        try:
            while self._pending:
                self._write_next()
        except BaseException:
            self.abort()
            raise
        self._pool.shutdown()
        return {split: w.close(**stats) for split, w in self.writers.items()}

    def abort(self) -> None:
        """Drop everything: pending batches and the unpublished stores."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        for w in self.writers.values():
            w.abort()
