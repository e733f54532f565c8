"""Chunking and filtering a batch of encoded documents at once, with numpy.

:func:`batch_pieces` gives exactly the pieces that :func:`~glmlab.data.examples.build_examples`
cuts (``_chunk``: a document longer than ``chunk_len`` is cut at its last sentence end within
each chunk's final quarter, else hard; pieces under ``min_tokens`` are dropped) and their
sentence ends (the reference's token rule, :func:`~glmlab.data.sentences.sentence_ends`), for
a whole batch of documents given as their ids back to back. Only documents longer than
``chunk_len`` take a Python loop; everything else is array arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glmlab.data.examples import _chunk
from glmlab.structures import TokenizedText

__all__ = ["Pieces", "batch_pieces"]


@dataclass(frozen=True)
class Pieces:
    """Pieces back to back: ``ids``; ``lengths`` (tokens per piece); ``sent_ends`` (int32,
    piece-relative, every piece's ends back to back); ``sent_counts`` (ends per piece)."""

    ids: np.ndarray
    lengths: np.ndarray
    sent_ends: np.ndarray
    sent_counts: np.ndarray


def _ranges(lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(l, l + c) for l, c in zip(lo, counts)])`` without the loop."""
    total = int(counts.sum())
    starts = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return np.arange(total, dtype=np.int64) - np.repeat(starts - lo, counts)


def batch_pieces(
    ids: np.ndarray,
    lengths: np.ndarray,
    end_table: np.ndarray,
    *,
    chunk_len: int,
    min_tokens: int,
) -> Pieces:
    """The pieces of documents whose ids are ``ids`` back to back, ``lengths[d]`` each."""
    lengths = np.asarray(lengths, dtype=np.int64)
    doc_end = np.cumsum(lengths)
    doc_start = doc_end - lengths
    # Global exclusive sentence ends: after every sentence-ending token.
    ends = np.flatnonzero(end_table[ids]) + 1
    short = (lengths > 0) & (lengths <= chunk_len)
    starts, stops = [doc_start[short]], [doc_end[short]]
    order = [np.flatnonzero(short)]
    for d in np.flatnonzero(lengths > chunk_len).tolist():
        s, e = int(doc_start[d]), int(doc_end[d])
        local = ends[np.searchsorted(ends, s, "right") : np.searchsorted(ends, e, "right")] - s
        if len(local) == 0 or local[-1] != e - s:
            local = np.append(local, e - s)
        doc = TokenizedText(np.empty(e - s, np.int8), local)  # _chunk reads only len(ids)
        cuts = [s]
        for piece_ids, _ in _chunk(doc, chunk_len):
            cuts.append(cuts[-1] + len(piece_ids))
        starts.append(np.asarray(cuts[:-1], np.int64))
        stops.append(np.asarray(cuts[1:], np.int64))
        order.append(np.full(len(cuts) - 1, d, np.int64))
    doc_of = np.concatenate(order)
    piece_start, piece_stop = np.concatenate(starts), np.concatenate(stops)
    by_doc = np.argsort(doc_of, kind="stable")  # pieces in document order
    piece_start, piece_stop = piece_start[by_doc], piece_stop[by_doc]
    keep = piece_stop - piece_start >= max(int(min_tokens), 1)
    # Pieces tile the documents, so a token is kept when its piece is.
    kept_ids = ids[np.repeat(keep, piece_stop - piece_start)]
    piece_start, piece_stop = piece_start[keep], piece_stop[keep]
    # A piece's ends: the sentence ends inside it, then its own end if that is not one.
    lo = np.searchsorted(ends, piece_start, "right")
    hi = np.searchsorted(ends, piece_stop, "right")
    inside = hi - lo
    closed = (inside > 0) & (ends[np.maximum(hi - 1, 0)] == piece_stop) if len(ends) else inside > 0
    counts = inside + ~closed
    first = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    rel = np.empty(int(counts.sum()), np.int32)
    rel[_ranges(first, inside)] = ends[_ranges(lo, inside)] - np.repeat(piece_start, inside)
    piece_len = piece_stop - piece_start
    rel[(first + inside)[~closed]] = piece_len[~closed]
    return Pieces(kept_ids, piece_len, rel, counts)
