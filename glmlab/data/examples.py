"""Tokenized documents and the compact example sets the loader draws from.

``tokenize_documents`` turns texts into :class:`~glmlab.structures.TokenizedText` with
sentence boundaries; ``build_examples`` cuts long documents into chunks, drops tiny
pieces and (optionally) packs consecutive pieces into examples of at most ``chunk_len``
tokens; :class:`ExampleSet` stores the result in a few flat numpy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glmlab.data.sentences import sentence_end_table, sentence_ends, split_sentences
from glmlab.io import atomic_write
from glmlab.structures import TokenizedText

if TYPE_CHECKING:
    from glmlab.data.tokenizer import GLMTokenizer

__all__ = ["ExampleSet", "build_examples", "tokenize_documents"]

_FORMAT = 1  # stored in every .npz; bump when the layout changes


def tokenize_documents(tokenizer: GLMTokenizer, texts: Sequence[str]) -> list[TokenizedText]:
    """Encode ``texts`` sentence by sentence (one batch call) into :class:`TokenizedText`.

    ``sentence_ends`` follow the reference's token rule
    (:func:`glmlab.data.sentences.sentence_ends`): after every token holding ``. ? ! ; :``
    or a newline, and at ``len(ids)``; an empty text gives empty ``ids`` and
    ``sentence_ends``.
    """
    table = sentence_end_table(lambda i: tokenizer.decode([i]), tokenizer.vocab_size)
    per_doc = [split_sentences(t) for t in texts]
    flat = [s for sents in per_doc for s in sents]
    encoded = tokenizer.encode_batch(flat) if flat else []
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    docs: list[TokenizedText] = []
    pos = 0
    for sents in per_doc:
        n = len(sents)
        if n == 0 or lengths[pos : pos + n].sum() == 0:
            docs.append(TokenizedText(np.zeros(0, np.int64), np.zeros(0, np.int64)))
            pos += n
            continue
        ids = np.concatenate(encoded[pos : pos + n]).astype(np.int64, copy=False)
        docs.append(TokenizedText(ids, sentence_ends(ids, table)))
        pos += n
    return docs


class ExampleSet:
    """Examples stored as flat arrays; ``es[i]`` is a list of :class:`TokenizedText`.

    An example is one or more consecutive *pieces* (whole documents or chunks of one)
    holding at most ``chunk_len`` tokens in total. Layout: ``ids`` (int32 or uint16, all pieces
    back to back), ``piece_offsets`` (n_pieces + 1) into ``ids``, ``sent_ends`` (int32,
    piece-relative sentence ends back to back), ``sent_offsets`` (n_pieces + 1) into
    ``sent_ends``, ``example_offsets`` (n_examples + 1) into the pieces.
    """

    def __init__(
        self,
        ids: np.ndarray,
        piece_offsets: np.ndarray,
        sent_ends: np.ndarray,
        sent_offsets: np.ndarray,
        example_offsets: np.ndarray,
        chunk_len: int,
    ) -> None:
        # uint16 ids (a memory-mapped store, glmlab/data/token_store.py) stay as they are.
        keep = np.asarray(ids).dtype == np.uint16
        self.ids = np.ascontiguousarray(ids, dtype=np.uint16 if keep else np.int32)
        self.piece_offsets = np.ascontiguousarray(piece_offsets, dtype=np.int64)
        self.sent_ends = np.ascontiguousarray(sent_ends, dtype=np.int32)
        self.sent_offsets = np.ascontiguousarray(sent_offsets, dtype=np.int64)
        self.example_offsets = np.ascontiguousarray(example_offsets, dtype=np.int64)
        self.chunk_len = int(chunk_len)
        n_pieces = len(self.piece_offsets) - 1
        if (
            len(self.sent_offsets) != n_pieces + 1
            or self.piece_offsets[-1] != len(self.ids)
            or self.sent_offsets[-1] != len(self.sent_ends)
            or self.example_offsets[-1] != n_pieces
        ):
            raise ValueError("inconsistent ExampleSet arrays")

    def __reduce__(self) -> tuple:
        arrays = (self.ids, self.piece_offsets, self.sent_ends, self.sent_offsets)
        return (ExampleSet, (*arrays, self.example_offsets, self.chunk_len))

    @classmethod
    def empty(cls, chunk_len: int) -> ExampleSet:
        z = np.zeros(1, np.int64)
        return cls(np.zeros(0, np.int32), z, np.zeros(0, np.int32), z, z, chunk_len)

    def __len__(self) -> int:
        return len(self.example_offsets) - 1

    def __getitem__(self, i: int) -> list[TokenizedText]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"example {i} out of range for {n} examples")
        return [self.piece(p) for p in range(self.example_offsets[i], self.example_offsets[i + 1])]

    def __iter__(self) -> Iterator[list[TokenizedText]]:
        return (self[i] for i in range(len(self)))

    def piece(self, p: int) -> TokenizedText:
        """Piece ``p`` as a :class:`TokenizedText` (int64 copies)."""
        a, b = self.piece_offsets[p], self.piece_offsets[p + 1]
        s, e = self.sent_offsets[p], self.sent_offsets[p + 1]
        return TokenizedText(self.ids[a:b].astype(np.int64), self.sent_ends[s:e].astype(np.int64))

    @property
    def n_pieces(self) -> int:
        return len(self.piece_offsets) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def example_lengths(self) -> np.ndarray:
        """Tokens per example, (n_examples,) int64 (for length-aware batching)."""
        return np.diff(self.piece_offsets[self.example_offsets])

    def __repr__(self) -> str:
        return (
            f"ExampleSet({len(self)} examples, {self.n_pieces} pieces, {self.n_tokens} tokens, "
            f"chunk_len={self.chunk_len})"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write an uncompressed ``.npz`` atomically."""
        arrays = {
            "format": np.array(_FORMAT),
            "chunk_len": np.array(self.chunk_len),
            "ids": self.ids,
            "piece_offsets": self.piece_offsets,
            "sent_ends": self.sent_ends,
            "sent_offsets": self.sent_offsets,
            "example_offsets": self.example_offsets,
        }
        # A file object, because np.savez appends ".npz" to paths without it.
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExampleSet:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != _FORMAT:
                raise ValueError(f"{path}: ExampleSet format {int(z['format'])} != {_FORMAT}")
            return cls(
                z["ids"],
                z["piece_offsets"],
                z["sent_ends"],
                z["sent_offsets"],
                z["example_offsets"],
                int(z["chunk_len"]),
            )


def _chunk(doc: TokenizedText, chunk_len: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut ``doc`` into pieces of at most ``chunk_len`` tokens, preferring sentence ends."""
    ids, ends = doc.ids, np.asarray(doc.sentence_ends, dtype=np.int64)
    n = len(ids)
    # Earliest acceptable soft cut: the last 25% of a chunk (never an empty piece).
    min_cut = max(1, chunk_len - chunk_len // 4)
    start = 0
    while start < n:
        if n - start <= chunk_len:
            cut = n
        else:
            # ends[lo:hi] are the sentence ends in [start + min_cut, start + chunk_len].
            lo = np.searchsorted(ends, start + min_cut, side="left")
            hi = np.searchsorted(ends, start + chunk_len, side="right")
            cut = int(ends[hi - 1]) if hi > lo else start + chunk_len
        a, b = np.searchsorted(ends, [start, cut], side="right")
        piece_ends = ends[a:b] - start
        if len(piece_ends) == 0 or piece_ends[-1] != cut - start:
            # A hard cut inside a sentence: the piece's last sentence ends at its end.
            piece_ends = np.append(piece_ends, cut - start)
        yield ids[start:cut], piece_ends
        start = cut


def build_examples(
    docs: Sequence[TokenizedText], *, chunk_len: int, packing: bool, min_tokens: int = 8
) -> ExampleSet:
    """Chunk, filter and (optionally) pack ``docs`` into an :class:`ExampleSet`.

    Documents longer than ``chunk_len`` are cut into chunks of at most ``chunk_len``,
    at the last sentence end within the chunk's final 25% if there is one, else hard.
    Pieces shorter than ``min_tokens`` are dropped. With ``packing`` consecutive pieces
    are grouped greedily while their total stays <= ``chunk_len``; without it every piece
    is its own example.
    """
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    min_tokens = max(int(min_tokens), 1)
    piece_ids: list[np.ndarray] = []
    piece_ends: list[np.ndarray] = []
    for doc in docs:
        for ids, ends in _chunk(doc, chunk_len):
            if len(ids) >= min_tokens:
                piece_ids.append(ids)
                piece_ends.append(ends)
    if not piece_ids:
        return ExampleSet.empty(chunk_len)

    lengths = np.fromiter((len(x) for x in piece_ids), dtype=np.int64, count=len(piece_ids))
    if packing:
        starts = [0]
        total = 0
        for p, n in enumerate(lengths.tolist()):
            if total + n > chunk_len and total > 0:
                starts.append(p)
                total = 0
            total += n
        example_offsets = np.array([*starts, len(piece_ids)], dtype=np.int64)
    else:
        example_offsets = np.arange(len(piece_ids) + 1, dtype=np.int64)

    piece_offsets = np.zeros(len(piece_ids) + 1, np.int64)
    np.cumsum(lengths, out=piece_offsets[1:])
    sent_offsets = np.zeros(len(piece_ids) + 1, np.int64)
    np.cumsum([len(e) for e in piece_ends], out=sent_offsets[1:])
    return ExampleSet(
        np.concatenate(piece_ids).astype(np.int32),
        piece_offsets,
        np.concatenate(piece_ends).astype(np.int32),
        sent_offsets,
        example_offsets,
        chunk_len,
    )
