"""Built-in span samplers: ``token``, ``sentence``, ``document`` and ``gmask``.

All randomness comes from the generator passed to ``sample``; every sampler keeps
``keep + 2 * n_spans <= max_len`` by dropping the text's tail when the row is too short.
"""

from __future__ import annotations

import math

import numpy as np

from glmlab import hookimpl
from glmlab.structures import MaskKind, SpanSet, TokenizedText


def _place_in_order(
    lengths: np.ndarray, keep: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Place spans of ``lengths`` (in that order) uniformly in ``[0, keep)`` with at least
    one unmasked token between consecutive spans (stars and bars over the free tokens)."""
    m = lengths.shape[0]
    cum = lengths.cumsum()
    free = keep - int(cum[-1]) - (m - 1)
    slots = rng.choice(free + m, size=m, replace=False)
    slots.sort()
    # Span i starts after (slots[i] - i) free tokens, the i spans before it and their i
    # mandatory gaps: slots[i] + (sum of the earlier lengths).
    ends = slots + cum
    return list(zip((ends - lengths).tolist(), ends.tolist(), strict=True))


class TokenSpanSampler:
    """GLM's token-level spans (NLU): lengths ~ Poisson(``poisson_lambda``) restricted to
    ``1..max_span_len`` and renormalised, drawn until ``mask_ratio`` of the tokens are
    covered (the last span is trimmed so the count is exact), placed uniformly at random,
    non-overlapping, with at least one unmasked token between spans."""

    def __init__(
        self,
        mask_ratio: float = 0.15,
        poisson_lambda: float = 3.0,
        max_span_len: int = 39,
        mask_kind: MaskKind = "MASK",
    ) -> None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if poisson_lambda <= 0 or max_span_len < 1:
            raise ValueError("poisson_lambda must be > 0 and max_span_len >= 1")
        k = np.arange(1, max_span_len + 1)
        log_pmf = (
            k * math.log(poisson_lambda)
            - poisson_lambda
            - np.array([math.lgamma(x + 1) for x in k])
        )
        pmf = np.exp(log_pmf)
        self.lengths = k
        self.probs = pmf / pmf.sum()
        # rng.choice(k, p=probs) draws searchsorted(cdf, rng.random()); precomputing the CDF
        # gives the same draws without choice()'s per-call validation of p.
        self.cdf = self.probs.cumsum()
        self.cdf /= self.cdf[-1]
        self.mean_len = float((k * self.probs).sum())
        self.mask_ratio = mask_ratio
        self.mask_kind = mask_kind

    def _draw_lengths(self, target: int, rng: np.random.Generator) -> np.ndarray:
        size = int(target / self.mean_len) + 4
        out = self.lengths[self.cdf.searchsorted(rng.random(size), side="right")]
        cum = out.cumsum()
        while cum[-1] < target:  # rare: one more batch of draws
            more = self.lengths[self.cdf.searchsorted(rng.random(size), side="right")]
            out = np.concatenate([out, more])
            cum = out.cumsum()
        m = int(cum.searchsorted(target)) + 1
        out = out[:m]
        out[-1] -= int(cum[m - 1]) - target
        return out

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len)
        while True:
            target = int(self.mask_ratio * keep)
            if target < 1:
                return SpanSet((), keep, self.mask_kind)
            lengths = self._draw_lengths(target, rng)  # they sum to target
            total = target
            while lengths.shape[0] > 1 and total + lengths.shape[0] - 1 > keep:
                total -= int(lengths[-1])  # cannot place them all with gaps: drop the last
                lengths = lengths[:-1]
            if keep + 2 * lengths.shape[0] <= max_len:
                return SpanSet(tuple(_place_in_order(lengths, keep, rng)), keep, self.mask_kind)
            keep = max(1, max_len - 2 * lengths.shape[0])  # drop the tail so Part B fits; redraw


class SentenceSpanSampler:
    """GLM's sentence-level spans (seq2seq): whole sentences, taken in random order until
    they cover at least ``mask_ratio`` of the tokens, each replaced by ``[sMASK]``.
    Sentence boundaries come from :func:`glmlab.data.sentences.split_sentences`."""

    def __init__(self, mask_ratio: float = 0.15, mask_kind: MaskKind = "sMASK") -> None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio
        self.mask_kind = mask_kind

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len)
        if max_len < 3:  # no span fits beside a kept token: the loop below would never end
            return SpanSet((), keep, self.mask_kind)
        while True:
            ends = text.sentence_ends[text.sentence_ends <= keep]
            if ends.shape[0] == 0 or ends[-1] != keep:
                ends = np.append(ends, keep)  # the cut tail counts as a sentence
            starts = np.concatenate([[0], ends[:-1]])
            target = self.mask_ratio * keep
            picked = rng.permutation(ends.shape[0])
            covered = np.cumsum((ends - starts)[picked])
            n_take = int(np.searchsorted(covered, target)) + 1
            chosen = np.sort(picked[:n_take])
            if keep + 2 * chosen.shape[0] <= max_len:
                spans = tuple(zip(starts[chosen].tolist(), ends[chosen].tolist(), strict=True))
                return SpanSet(spans, keep, self.mask_kind)
            keep = max(1, max_len - 2 * chosen.shape[0])


class SuffixSpanSampler:
    """One span at the end of the text, its length a uniform fraction in
    ``[min_ratio, max_ratio]`` of the text, replaced by ``[gMASK]``: GLM's document-level
    objective (50-100%) and GLM-130B's gMASK (a prefix kept as context, the rest masked)."""

    def __init__(
        self, min_ratio: float, max_ratio: float, mask_kind: MaskKind = "gMASK", min_prefix: int = 0
    ) -> None:
        if not 0 <= min_ratio <= max_ratio <= 1:
            raise ValueError(f"need 0 <= min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
        self.min_ratio, self.max_ratio = min_ratio, max_ratio
        self.mask_kind = mask_kind
        self.min_prefix = min_prefix

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len - 2)
        if keep - self.min_prefix < 1:
            return SpanSet((), max(1, min(keep, max_len)), self.mask_kind)
        frac = rng.uniform(self.min_ratio, self.max_ratio)
        length = min(max(1, round(frac * keep)), keep - self.min_prefix)
        return SpanSet(((keep - length, keep),), keep, self.mask_kind)


def document_sampler(
    min_ratio: float = 0.5, max_ratio: float = 1.0, mask_kind: MaskKind = "gMASK"
) -> SuffixSpanSampler:
    return SuffixSpanSampler(min_ratio, max_ratio, mask_kind)


def gmask_sampler(
    min_ratio: float = 0.0,
    max_ratio: float = 1.0,
    min_prefix: int = 1,
    mask_kind: MaskKind = "gMASK",
) -> SuffixSpanSampler:
    return SuffixSpanSampler(min_ratio, max_ratio, mask_kind, min_prefix=min_prefix)


@hookimpl
def glmlab_span_samplers() -> dict[str, object]:
    return {
        "token": TokenSpanSampler,
        "sentence": SentenceSpanSampler,
        "document": document_sampler,
        "gmask": gmask_sampler,
    }
