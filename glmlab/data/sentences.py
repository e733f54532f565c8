"""Rule-based sentence splitting, used to record sentence boundaries for sentence masking.

Rules, applied left to right:

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

__all__ = ["split_sentences"]

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
