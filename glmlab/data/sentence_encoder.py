r"""Encode whole documents into exactly the ids of encoding their sentences one by one.

Every corpus encodes a document sentence by sentence (the pieces of
:func:`~glmlab.data.sentences.split_sentences`, so that no token straddles a likely boundary).
Doing that in Python (split, one string and one ``Encoding`` per sentence) costs more than
the encoding itself. :class:`SentenceEncoder` instead encodes whole documents, in one batch
call that is parallel in Rust, with a copy of the tokenizer whose pre-tokenizer splits text
exactly where encoding sentence by sentence splits it, in one regular expression pass:

The byte-level pre-tokenizer splits with the GPT-2 expression ``'s|'t|...| ?\p{L}+| ?\p{N}+|
 ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``. Within a text, a sentence boundary of
:func:`split_sentences` is always at the end of a maximal whitespace run that follows one of
``. ? ! ; :`` or holds a newline (a *boundary run*), and no GPT-2 token other than a
whitespace one touches a whitespace run. Encoded alone, a sentence ends with its boundary
run, which ``\s+(?!\S)`` then takes whole; in the whole text it would leave the run's last
character to the next word. So the expression used here is GPT-2's with two alternatives in
front that take a boundary run whole, and otherwise the same tokens come out.

Two kinds of text are encoded sentence by sentence with the plain tokenizer instead: one
that starts with a newline (:func:`split_sentences` keeps its leading whitespace with the
first sentence) and one holding U+001C..U+001F, which Python counts as whitespace and the
tokenizer's regex engine does not. ``tests/test_data_fast.py`` pins the equality (a corpus,
odd texts and random strings).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Regex, Tokenizer, pre_tokenizers

from glmlab.data.sentences import sentence_end_table, split_sentences

if TYPE_CHECKING:
    from glmlab.data.tokenizer import GLMTokenizer

__all__ = ["PYTHON_WHITESPACE", "SentenceEncoder", "pre_tokenizer_pattern"]


# Python's ``\s`` for str patterns (str.isspace); tests/test_data_fast.py checks the list.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# U+001C..U+001F are whitespace to Python, not to the tokenizer's regex engine (Oniguruma).
# The tokenizers library's byte-level expression (GPT-2's).
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def pre_tokenizer_pattern() -> str:
    """GPT-2's expression preceded by the two boundary-run alternatives (module docstring)."""
    ws = "[" + "".join(f"\\x{{{ord(c):X}}}" for c in PYTHON_WHITESPACE) + "]"
    return rf"(?<=[.?!;:]){ws}+|{ws}*\n{ws}*|{_GPT2}"


def _needs_sentences(text: str) -> bool:
    # Four substring scans beat one character-class search by about 5x.
    return (
        text.startswith("\n")
        or "\x1c" in text
        or "\x1d" in text
        or "\x1e" in text
        or "\x1f" in text
    )


class SentenceEncoder:
    """Batch encoding of whole documents, split at sentence boundaries inside the tokenizer."""

    def __init__(self, tokenizer: GLMTokenizer) -> None:
        self.tokenizer = tokenizer
        plain = tokenizer.hf_tokenizer
        self._plain = plain
        self._split: Tokenizer | None = None
        state = plain.pre_tokenizer.__getstate__() if plain.pre_tokenizer is not None else b"{}"
        byte_level = json.loads(state)
        # glmlab's layout (tokenizer.py); any other tokenizer is encoded sentence by sentence.
        if byte_level == {**byte_level, "type": "ByteLevel", "add_prefix_space": False} and (
            byte_level.get("use_regex", True) and plain.normalizer is None
        ):
            split = Tokenizer.from_str(plain.to_str())
            split.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(pre_tokenizer_pattern()), "isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
            split.encode_special_tokens = True  # as GLMTokenizer: text never becomes special ids
            self._split = split
        self.dtype = (
            np.dtype(np.uint16) if tokenizer.padded_vocab_size <= 65536 else np.dtype(np.int32)
        )
        #: (vocab_size,) bool: the reference's sentence-ending tokens.
        self.end_table = sentence_end_table(lambda i: tokenizer.decode([i]), tokenizer.vocab_size)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: every text's ids back to back (``self.dtype``) and the number
        of ids of each text (int64), as :func:`~glmlab.data.examples.tokenize_documents`
        would give them."""
        texts = list(texts)
        if self._split is not None and texts:
            encodings = self._split.encode_batch_fast(texts, add_special_tokens=False)
            per_text = [np.array(e.ids, dtype=self.dtype) for e in encodings]
        else:
            per_text = [np.zeros(0, self.dtype)] * len(texts)
        for i, text in enumerate(texts):
            if self._split is None or _needs_sentences(text):  # see the module docstring
                sentences = split_sentences(text)
                encoded = self._plain.encode_batch_fast(sentences, add_special_tokens=False)
                per_text[i] = np.array([t for e in encoded for t in e.ids], dtype=self.dtype)
        lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
        ids = np.concatenate(per_text) if per_text else np.zeros(0, self.dtype)
        return ids, lengths
