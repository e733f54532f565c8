"""Sentence boundaries for sentence masking.

The boundaries a sample uses are the reference's token rule (:func:`sentence_end_table`): a
sentence ends after every token whose text holds one of ``. ? ! ; :`` or a newline, and an
unterminated tail is a sentence. :func:`split_sentences` only splits a text into the pieces
that are encoded separately (so that no token straddles a likely boundary).

Text rules of :func:`split_sentences`, applied left to right:

* a sentence ends after one of ``. ? ! ; :`` that is followed by whitespace, together
  with that whole run of whitespace;
* a sentence also ends at a newline, together with the newline and all whitespace that
  follows it (so blank lines and indentation stay with the preceding sentence);
* whitespace at the very start of the text belongs to the first sentence;
* whatever is left at the end is the last sentence.

Hence ``"".join(split_sentences(t)) == t`` for every string, no piece is empty, and only
the first piece can start with whitespace. The rules are deliberately simple: "e.g. x"
splits after "e.g.", "3.14" does not split. Docstrings and code comments break lines a
lot, so splitting at newlines keeps sentences short and their boundaries plentiful.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

__all__ = ["SENTENCE_END_CHARS", "sentence_end_table", "sentence_ends", "split_sentences"]

SENTENCE_END_CHARS = ".?!;:\n"  # the reference's contains_sentence_end

# A sentence boundary: whitespace after a terminator, or a newline plus the whitespace
# after it. Whitespace before a newline is consumed by the first branch only after a
# terminator; otherwise it stays in the sentence text, which is what we want.
_BOUNDARY = re.compile(r"(?<=[.?!;:])\s+|\n\s*")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences whose concatenation is exactly ``text``."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.start() == 0:
            # Leading whitespace: keep it with the first real sentence.
            continue
        out.append(text[start:end])
        start = end
    if start < len(text):
        out.append(text[start:])
    return out


def sentence_end_table(decode_one: Callable[[int], str], vocab_size: int) -> np.ndarray:
    """(vocab_size,) bool: whether token ``i`` (its text ``decode_one(i)``) ends a sentence,
    i.e. holds one of :data:`SENTENCE_END_CHARS`."""
    ends = set(SENTENCE_END_CHARS)
    return np.fromiter(
        (not ends.isdisjoint(decode_one(i)) for i in range(vocab_size)),
        dtype=bool,
        count=vocab_size,
    )


def sentence_ends(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Exclusive sentence ends of ``ids`` under ``table``: after every sentence-ending
    token, and at ``len(ids)`` (an unterminated tail is a sentence); empty for no tokens."""
    ends = np.flatnonzero(table[ids]) + 1
    if ids.shape[0] and (ends.shape[0] == 0 or ends[-1] != ids.shape[0]):
        ends = np.append(ends, ids.shape[0])
    return ends.astype(np.int64)
