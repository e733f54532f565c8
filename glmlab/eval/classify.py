"""``classify``: an understanding-style task built from held-out text, scored by blank
infilling as GLM's papers cast classification (a cloze with a verbalizer, PET style).

Each item is a validation passage in which one occurrence of a closed-class word is the
blank; the classes are the words of its :data:`LABEL_SETS` entry (``is``/``are``: number
agreement with the subject; ``a``/``an``/``the``: the article, which the *next* word
decides between ``a`` and ``an``; ``and``/``or``; five prepositions). The model picks the
word it scores highest in the blank. Items are balanced within each set (as many of each
word), so the most frequent word wins only 1 / k of its set's items: the unigram reference
(token frequencies, the majority class) and chance sit at the same level, and beating them
takes the context on both sides. A set is used only where every word of it is one token in
the run's tokenizer (all candidates then have one token: no length bias)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from glmlab.eval.items import ClozeItem
from glmlab.structures import TokenizedText

__all__ = ["LABEL_SETS", "classify_items", "label_sets"]

LABEL_SETS: tuple[tuple[str, ...], ...] = (
    (" is", " are"),
    (" a", " an", " the"),
    (" and", " or"),
    (" in", " of", " for", " with", " to"),
)


def label_sets(encode: Callable[[str], Sequence[int]]) -> list[tuple[int, ...]]:
    """The :data:`LABEL_SETS` whose every word ``encode`` makes one token, as token ids."""
    out = []
    for words in LABEL_SETS:
        ids = [list(encode(w)) for w in words]
        if all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == len(ids):
            out.append(tuple(int(i[0]) for i in ids))
    return out


def classify_items(
    texts: Sequence[TokenizedText],
    sets: Sequence[tuple[int, ...]],
    *,
    n_items: int,
    seq_len: int,
    seed: int,
) -> list[ClozeItem]:
    """Up to ``n_items`` items over ``texts``: per set, the same number of occurrences of
    each of its words (not at a passage's first token), drawn with a fixed seed; the words
    and then the sets take turns, so a cut at ``n_items`` keeps every set and word about
    equally represented. Each item's candidates are its set's words, the true one first."""
    rng = np.random.default_rng((seed, zlib.crc32(b"classify")))
    per_set: list[list[ClozeItem]] = []
    for words in sets:
        where: dict[int, list[tuple[int, int]]] = {w: [] for w in words}
        for p, text in enumerate(texts):
            ids = text.ids[: seq_len - 2]  # Part B adds [sop] and [eop]
            for at in np.flatnonzero(np.isin(ids[1:], words)) + 1:
                where[int(ids[at])].append((p, int(at)))
        k = min(len(v) for v in where.values())
        drawn = {w: rng.permutation(len(where[w]))[:k] for w in words}  # k of each word
        picked = [(w, where[w][drawn[w][j]]) for j in range(k) for w in words]  # in turn
        per_set.append(
            [
                ClozeItem(
                    texts[p].ids[: seq_len - 2],
                    (at, at + 1),
                    tuple(np.array([c]) for c in (w, *(x for x in words if x != w))),
                )
                for w, (p, at) in picked
            ]
        )
    items = [i for group in _interleave(per_set) for i in group]
    return items[:n_items]


def _interleave(groups: list[list[ClozeItem]]) -> list[list[ClozeItem]]:
    """One item of each group in turn, so that a truncation keeps every set represented."""
    longest = max((len(g) for g in groups), default=0)
    return [[g[j] for g in groups if j < len(g)] for j in range(longest)]
