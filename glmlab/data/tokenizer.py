"""Byte-level BPE tokenizer with GLM's special tokens, trained with HF ``tokenizers``.

Vocabulary layout (ids in this order from 0): ``[pad] [MASK] [sMASK] [gMASK] [sop] [eop]``,
then ``[MASK_0]..[MASK_{k-1}]`` and ``[sop_0]..[sop_{k-1}]`` (k = ``n_sentinels``, for
T5-style sentinel ablations), then the 256 byte symbols and the learned merges.

There is no normalizer and the pre-tokenizer/decoder pair is ByteLevel, so
``decode(encode(t)) == t`` for any text. Special tokens are never produced from input
text (``encode("[MASK]")`` gives ordinary byte tokens): the objective inserts them by id,
and a corpus that happens to mention "[MASK]" must not leak mask tokens into Part A.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from glmlab.data.cache import cache_dir, cache_key
from glmlab.data.corpus import Corpus
from glmlab.io import write_text_atomic
from glmlab.structures import SpecialTokens

__all__ = [
    "BASE_SPECIALS",
    "GLMTokenizer",
    "SpecialTokens",
    "load_or_train",
    "min_vocab_size",
    "padded_vocab_size",
]

log = logging.getLogger("glmlab")

BASE_SPECIALS: tuple[str, ...] = ("[pad]", "[MASK]", "[sMASK]", "[gMASK]", "[sop]", "[eop]")
_PAD_MULTIPLE = 64  # embedding rows rounded up for tensor-core friendly matmuls


def padded_vocab_size(vocab_size: int) -> int:
    """The model's embedding (and output head) rows for ``vocab_size`` tokens: rounded up
    to a multiple of 64."""
    return -(-int(vocab_size) // _PAD_MULTIPLE) * _PAD_MULTIPLE


_FORMAT = 1  # bump when training settings change, to invalidate cached tokenizers


def _special_names(n_sentinels: int) -> list[str]:
    return [
        *BASE_SPECIALS,
        *(f"[MASK_{i}]" for i in range(n_sentinels)),
        *(f"[sop_{i}]" for i in range(n_sentinels)),
    ]


def min_vocab_size(n_sentinels: int) -> int:
    """The smallest ``vocab_size`` that leaves room for one merge: every special token
    plus the 256 byte symbols, plus one."""
    return len(_special_names(n_sentinels)) + len(pre_tokenizers.ByteLevel.alphabet()) + 1


class GLMTokenizer:
    """A trained byte-level BPE tokenizer; build with :meth:`train`, :meth:`load` or
    :func:`load_or_train`."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        # Input text must never turn into special ids (see module docstring).
        self._tok.encode_special_tokens = True
        ids = {name: tokenizer.token_to_id(name) for name in BASE_SPECIALS}
        missing = [n for n, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"not a GLM tokenizer: special tokens {missing} are missing")
        n = 0
        while tokenizer.token_to_id(f"[MASK_{n}]") is not None:
            n += 1
        self.n_sentinels = n
        self._specials = SpecialTokens(
            pad=ids["[pad]"],
            mask=ids["[MASK]"],
            smask=ids["[sMASK]"],
            gmask=ids["[gMASK]"],
            sop=ids["[sop]"],
            eop=ids["[eop]"],
            sentinel_masks=tuple(tokenizer.token_to_id(f"[MASK_{i}]") for i in range(n)),
            sentinel_sops=tuple(tokenizer.token_to_id(f"[sop_{i}]") for i in range(n)),
        )
        expected = tuple(range(len(BASE_SPECIALS) + 2 * n))
        if self._specials.all_ids != expected or None in self._specials.sentinel_sops:
            raise ValueError("not a GLM tokenizer: special tokens are not at ids 0.. in order")

    # ------------------------------------------------------------------ construction

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int, n_sentinels: int) -> GLMTokenizer:
        """Train a byte-level BPE of at most ``vocab_size`` tokens (specials included).

        The result can be smaller than ``vocab_size`` when the corpus runs out of merges.
        """
        specials = _special_names(n_sentinels)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if n_sentinels < 0:
            raise ValueError(f"n_sentinels must be >= 0, got {n_sentinels}")
        if vocab_size <= len(specials) + len(alphabet):
            raise ValueError(
                f"vocab_size={vocab_size} leaves no room for merges: {len(specials)} special "
                f"tokens + {len(alphabet)} byte symbols; raise vocab_size or lower n_sentinels"
            )
        tok = Tokenizer(models.BPE())
        # add_prefix_space=False: a leading space would break the exact round trip.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=False,
        )
        texts = list(texts) if not isinstance(texts, Sequence) else texts
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        return cls(tok)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GLMTokenizer:
        """Load a tokenizer saved by :meth:`save` (a HF ``tokenizer.json``)."""
        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json`` to ``path`` atomically."""
        return write_text_atomic(path, self._tok.to_str())

    # ---------------------------------------------------------------------- encoding

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as int64 (no special tokens added)."""
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode` for many texts at once (parallel in Rust; much faster)."""
        encs = self._tok.encode_batch_fast(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def decode(self, ids: Iterable[int] | np.ndarray, *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; special tokens are rendered as their names unless skipped."""
        ids = np.asarray(ids).tolist() if isinstance(ids, np.ndarray) else [int(i) for i in ids]
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, id_: int) -> str | None:
        return self._tok.id_to_token(int(id_))

    # -------------------------------------------------------------------- properties

    @property
    def vocab_size(self) -> int:
        """Number of tokens actually in the vocabulary."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows for the model: ``vocab_size`` rounded up to a multiple of 64."""
        return padded_vocab_size(self.vocab_size)

    @property
    def specials(self) -> SpecialTokens:
        return self._specials

    @property
    def hf_tokenizer(self) -> Tokenizer:
        """The underlying HF tokenizer (for inspection; do not mutate)."""
        return self._tok

    def __repr__(self) -> str:
        return (
            f"GLMTokenizer(vocab_size={self.vocab_size}, padded={self.padded_vocab_size}, "
            f"n_sentinels={self.n_sentinels})"
        )


def load_or_train(corpus: Corpus, *, vocab_size: int, n_sentinels: int) -> GLMTokenizer:
    """The tokenizer for ``corpus``'s training split, from the cache or trained and cached."""
    key = cache_key("tokenizer", _FORMAT, corpus.fingerprint, vocab_size, n_sentinels)
    path = cache_dir() / "tokenizers" / key / "tokenizer.json"
    if path.is_file():
        try:
            return GLMTokenizer.load(path)
        # HF raises a bare Exception on malformed JSON; a corrupt entry is rebuilt.
        except Exception as e:
            log.warning("ignoring unreadable cached tokenizer %s: %s", path, e)
    t0 = time.perf_counter()
    tok = GLMTokenizer.train(corpus.train, vocab_size=vocab_size, n_sentinels=n_sentinels)
    log.info(
        "trained tokenizer on %s (%d docs) in %.1fs: vocab %d (padded %d)",
        corpus.name,
        len(corpus.train),
        time.perf_counter() - t0,
        tok.vocab_size,
        tok.padded_vocab_size,
    )
    tok.save(path)
    return tok
