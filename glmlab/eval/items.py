"""The suite's items: passages from the held-out test split (the validation split when a
corpus has none: ``PreparedData.evaluation``) and, per task, the spans to fill
in (:data:`TASKS`) or the cloze answer with its distractors; seeded on their own, so every
variant and seed of a sweep sees the same items."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from glmlab.data.examples import ExampleSet
from glmlab.plugin.registry import get_registry
from glmlab.structures import MaskKind, SpanSet, TokenizedText

__all__ = [
    "CLOZE_SPAN_TOKENS",
    "MIN_PASSAGE_TOKENS",
    "SHUFFLED_ORDERS",
    "TASKS",
    "ClozeItem",
    "InfillTask",
    "cloze_items",
    "infill_items",
    "passages",
    "random_orders",
    "single_span_items",
]


MIN_PASSAGE_TOKENS = 16  # shorter validation pieces leave no room for spans and context

CLOZE_SPAN_TOKENS = (2, 6)  # inclusive range of the cloze answer's length in tokens


@dataclass(frozen=True)
class InfillTask:
    """One infilling task: a span sampler from the registry and its natural mask token."""

    name: str
    sampler: str
    options: dict[str, Any]
    mask_kind: MaskKind


TASKS: tuple[InfillTask, ...] = (
    InfillTask("infill_token", "token", {"mask_ratio": 0.15, "poisson_lambda": 3.0}, "MASK"),
    InfillTask("infill_sentence", "sentence", {"mask_ratio": 0.15}, "sMASK"),
    InfillTask("doc_gen", "document_suffix", {"min_ratio": 0.5, "max_ratio": 0.5}, "gMASK"),
)


class _AfterFirstToken:
    """Wraps a span sampler so that no span covers a passage's first token: a
    left-to-right model then has context for every scored token."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        ends = text.sentence_ends - 1
        rest = TokenizedText(text.ids[1:], ends[ends > 0])
        spans = self.inner.sample(rest, max_len=max_len - 1, rng=rng)
        shifted = tuple((s + 1, e + 1) for s, e in spans.spans)
        return dataclasses.replace(spans, spans=shifted, keep=spans.keep + 1)


SHUFFLED_ORDERS = 4  # random Part B orders per item of ``infill_shuffled``


def single_span_items(
    items: Sequence[tuple[np.ndarray, SpanSet]], *, seed: int
) -> list[tuple[np.ndarray, SpanSet]]:
    """``infill_single``: one span of each item of ``items`` (``infill_token``'s), drawn
    with a fixed seed, as the item's only span. With one span there is no Part B order,
    so the score cannot favour a model trained with (or without) span shuffling."""
    out = []
    for i, (ids, spans) in enumerate(items):
        rng = np.random.default_rng((seed, zlib.crc32(b"infill_single"), i))
        kept = spans.spans[int(rng.integers(len(spans.spans))) :][:1]  # none if it has none
        out.append((ids, dataclasses.replace(spans, spans=kept)))
    return out


def random_orders(
    items: Sequence[tuple[np.ndarray, SpanSet]], *, seed: int, k: int = SHUFFLED_ORDERS
) -> list[list[np.ndarray]]:
    """``infill_shuffled``: per item, ``k`` random Part B orders (permutations of its
    spans), fixed by ``seed`` and the item's index."""
    out = []
    for i, (_, spans) in enumerate(items):
        rng = np.random.default_rng((seed, zlib.crc32(b"infill_shuffled"), i))
        out.append([rng.permutation(len(spans.spans)) for _ in range(k)])
    return out


@dataclass(frozen=True)
class ClozeItem:
    """A passage, the answer's span in it and the candidates; ``candidates[0]`` is true."""

    ids: np.ndarray
    span: tuple[int, int]
    candidates: tuple[np.ndarray, ...]


def passages(validation: ExampleSet, n: int) -> list[TokenizedText]:
    """The first ``n`` validation pieces of at least :data:`MIN_PASSAGE_TOKENS` tokens."""
    out: list[TokenizedText] = []
    for p in range(validation.n_pieces):
        piece = validation.piece(p)
        if len(piece) >= MIN_PASSAGE_TOKENS:
            out.append(piece)
            if len(out) == n:
                break
    if not out:
        raise ValueError(
            f"the test split (the validation split when the corpus has none) has no passage "
            f"of {MIN_PASSAGE_TOKENS}+ tokens to evaluate on: give the corpus more or longer "
            "documents, raise data.corpus_options.test_fraction, or set train.eval_suite=false"
        )
    return out


def infill_items(
    texts: Sequence[TokenizedText], task: InfillTask, *, seq_len: int, seed: int
) -> list[tuple[np.ndarray, SpanSet]]:
    """The spans of ``task`` in each passage, from the registry's sampler (fixed seeds)."""
    options = {**task.options, "mask_kind": task.mask_kind}
    sampler = _AfterFirstToken(get_registry().create("span_sampler", task.sampler, **options))
    stream = zlib.crc32(task.name.encode())  # one random stream per task, stable across runs
    items = []
    for i, text in enumerate(texts):
        rng = np.random.default_rng((seed, stream, i))
        items.append((text.ids, sampler.sample(text, max_len=seq_len, rng=rng)))
    return items


def cloze_items(
    texts: Sequence[TokenizedText], *, n_items: int, n_distractors: int, seq_len: int, seed: int
) -> list[ClozeItem]:
    """``n_items`` cloze items over ``texts`` (cycled): the answer is a random span of
    :data:`CLOZE_SPAN_TOKENS` tokens after the first token; the distractors are distinct
    spans of the same length from other passages, none equal to the answer."""
    lo, hi = CLOZE_SPAN_TOKENS
    items = []
    for j in range(n_items):
        rng = np.random.default_rng((seed, zlib.crc32(b"cloze"), j))
        p = j % len(texts)
        ids = texts[p].ids[: seq_len - 2]  # Part B adds [sop] and [eop]
        length = int(rng.integers(lo, min(hi, ids.shape[0] - 2) + 1))
        start = int(rng.integers(1, ids.shape[0] - length + 1))
        truth = ids[start : start + length]
        pool = [q for q in range(len(texts)) if q != p and len(texts[q]) >= length]
        candidates = [truth]
        for _ in range(100 * n_distractors):
            if len(candidates) == n_distractors + 1 or not pool:
                break
            other = texts[pool[int(rng.integers(len(pool)))]].ids
            at = int(rng.integers(0, other.shape[0] - length + 1))
            cand = other[at : at + length]
            if not any(np.array_equal(cand, c) for c in candidates):
                candidates.append(cand)
        if len(candidates) < n_distractors + 1:
            raise ValueError(f"cloze item {j}: found too few distinct distractors")
        items.append(ClozeItem(ids, (start, start + length), tuple(candidates)))
    return items
