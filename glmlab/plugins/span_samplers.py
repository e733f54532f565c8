"""Built-in span samplers: ``token``, ``sentence``, ``document``, ``document_suffix`` and
``gmask``.

Each follows the reference procedure of THUDM/GLM's ``ConstructBlockStrategy``
(``blocklm_utils.py``; see docs/FIDELITY.md). All randomness comes from the generator
passed in; every sampler keeps ``keep + 2 * n_spans <= max_len`` (one less for a span without
[eop]) by dropping the text's tail when the row is too short.

Two optional hooks extend the one-text ``sample`` contract (docs/PLUGINS.md):
``sample_row(texts, max_len, rng)`` spends one budget over every piece of a packed row (the
sentence sampler), and ``for_batch(texts, rng)`` draws what the reference draws once per
batch (the document sampler's span length).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from glmlab import hookimpl
from glmlab.plugin.base import SpanSamplerBase
from glmlab.plugin.helpers import place_spans
from glmlab.structures import MaskKind, SpanSet, TokenizedText

MAX_REDRAWS = 1000  # draws of span lengths before a sampler clips them (never reached in practice)


class TokenSpanSampler(SpanSamplerBase):
    """GLM's token-level spans (NLU), the reference procedure: lengths ~ Poisson(``poisson_lambda``)
    restricted to ``1..max_span_len`` and renormalised, drawn until they cover at least
    ``int(mask_ratio * n)`` tokens (never trimmed, so the ratio overshoots a little), shuffled,
    then placed by :func:`place_spans`.

    Lengths that cannot be placed with a gap between spans (``sum + m - 1 > n``) are redrawn:
    the reference drops such a sample, so redrawing keeps exactly the distribution of the
    samples it keeps. After :data:`MAX_REDRAWS` failures (texts of a few tokens only) the
    last lengths are dropped until the rest fit.
    """

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

    def draw_lengths(self, target: int, rng: np.random.Generator) -> np.ndarray:
        """Lengths drawn one by one until their sum reaches ``target``, in random order."""
        size = int(target / self.mean_len) + 4
        out = self.lengths[self.cdf.searchsorted(rng.random(size), side="right")]
        cum = out.cumsum()
        while cum[-1] < target:  # rare: one more batch of draws
            more = self.lengths[self.cdf.searchsorted(rng.random(size), side="right")]
            out = np.concatenate([out, more])
            cum = out.cumsum()
        out = out[: int(cum.searchsorted(target)) + 1]  # the first prefix reaching target
        return rng.permutation(out)

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len)
        for _ in range(MAX_REDRAWS):
            target = int(self.mask_ratio * keep)
            if target < 1:
                return SpanSet((), keep, self.mask_kind)
            lengths = self.draw_lengths(target, rng)
            m = lengths.shape[0]
            if int(lengths.sum()) + m - 1 > keep:
                continue  # cannot be placed: the reference drops the sample; redraw
            if keep + 2 * m > max_len:
                keep = max(1, max_len - 2 * m)  # drop the tail so Part B fits; redraw
                continue
            return SpanSet(tuple(place_spans(lengths, keep, rng)), keep, self.mask_kind)
        while lengths.shape[0] and (
            int(lengths.sum()) + lengths.shape[0] - 1 > keep
            or keep + 2 * lengths.shape[0] > max_len
        ):
            lengths = lengths[:-1]
        return SpanSet(tuple(place_spans(lengths, keep, rng)), keep, self.mask_kind)


def _sentences(text: TokenizedText, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the sentences in the first ``keep`` tokens (a cut tail counts)."""
    ends = text.sentence_ends[text.sentence_ends <= keep]
    if ends.shape[0] == 0 or ends[-1] != keep:
        ends = np.append(ends, keep)
    return np.concatenate([[0], ends[:-1]]).astype(np.int64), ends.astype(np.int64)


class SentenceSpanSampler(SpanSamplerBase):
    """GLM's sentence-level spans (seq2seq), the reference procedure: the row's sentences in
    random order, taken until they cover at least ``int(mask_ratio * n)`` of the row's ``n``
    tokens (at least one sentence). The budget belongs to the whole packed row
    (:meth:`sample_row`); :meth:`sample` is the one-piece row. Sentence boundaries are the
    pieces' ``sentence_ends`` (after every token holding ``. ? ! ; :`` or a newline, see
    :func:`glmlab.data.sentences.sentence_end_table`)."""

    def __init__(self, mask_ratio: float = 0.15, mask_kind: MaskKind = "sMASK") -> None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio
        self.mask_kind = mask_kind

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        return self.sample_row([text], max_len=max_len, rng=rng)[0]

    def sample_row(
        self, texts: Sequence[TokenizedText], *, max_len: int, rng: np.random.Generator
    ) -> list[SpanSet]:
        """Spans for every piece of one row; together they fit ``max_len``. When they do not,
        the row's last tokens are dropped and the sentences redrawn; pieces left with no
        token get no SpanSet (the list is then shorter than ``texts``)."""
        keeps = [len(t) for t in texts]
        excess = sum(keeps) - max_len
        for j in reversed(range(len(keeps))):  # the text alone must fit first
            cut = min(max(excess, 0), keeps[j])
            keeps[j] -= cut
            excess -= cut
        while True:
            keeps = [k for k in keeps if k > 0]
            if not keeps:
                return [SpanSet((), min(len(texts[0]), max(max_len, 1)), self.mask_kind)]
            parts = [_sentences(t, k) for t, k in zip(texts, keeps, strict=False)]
            piece = np.concatenate([np.full(s.shape[0], j) for j, (s, _) in enumerate(parts)])
            starts = np.concatenate([s for s, _ in parts])
            ends = np.concatenate([e for _, e in parts])
            target = int(self.mask_ratio * sum(keeps))
            picked = rng.permutation(starts.shape[0])
            covered = np.cumsum((ends - starts)[picked])
            n_take = min(int(np.searchsorted(covered, target)) + 1, picked.shape[0])
            chosen = np.sort(picked[:n_take])
            excess = sum(keeps) + 2 * n_take - max_len
            if excess <= 0:
                return [
                    SpanSet(
                        tuple((int(starts[c]), int(ends[c])) for c in chosen if piece[c] == j),
                        k,
                        self.mask_kind,
                    )
                    for j, k in enumerate(keeps)
                ]
            keeps[-1] -= min(excess, keeps[-1])  # drop the row's tail so Part B fits; redraw


class DocumentSpanSampler(SpanSamplerBase):
    """GLM's document-level spans (generation), the reference procedure: one length per
    batch, uniform in ``[int(min_ratio * shortest), longest - 2]`` over the batch's texts
    (:meth:`for_batch`); per text ``min(length, n - 2)``, so at least two tokens of context
    remain. With probability ``suffix_prob`` the span is the text's suffix, laid out without
    [eop] (Part B input ``[sop] target[:-1]``, targets ``target``); otherwise one span of that
    length placed like a token-level span, with [eop]. ``mask_kind``: ``MASK`` as the
    reference without task masks, ``gMASK`` with them.

    Unbound (:meth:`sample` before :meth:`for_batch`), the text is its own batch: a length
    uniform in ``[int(min_ratio * n), n - 2]``.
    """

    def __init__(
        self,
        min_ratio: float = 0.5,
        suffix_prob: float = 0.5,
        mask_kind: MaskKind = "gMASK",
        length: int | None = None,
    ) -> None:
        if not 0 <= min_ratio <= 1:
            raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
        if not 0 <= suffix_prob <= 1:
            raise ValueError(f"suffix_prob must be in [0, 1], got {suffix_prob}")
        self.min_ratio, self.suffix_prob, self.mask_kind = min_ratio, suffix_prob, mask_kind
        self.length = length

    def for_batch(
        self, texts: Sequence[TokenizedText], *, rng: np.random.Generator
    ) -> DocumentSpanSampler:
        """This sampler with the batch's span length drawn from ``texts``' lengths."""
        sizes = [len(t) for t in texts] or [0]
        lo, hi = int(self.min_ratio * min(sizes)), max(sizes) - 2
        length = int(rng.integers(lo, hi + 1)) if hi >= lo else max(hi, 0)
        return DocumentSpanSampler(self.min_ratio, self.suffix_prob, self.mask_kind, length)

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        if self.length is None:
            return self.for_batch([text], rng=rng).sample(text, max_len=max_len, rng=rng)
        keep = max(1, min(len(text), max_len - 2))
        length = min(self.length, keep - 2)
        if length < 1:
            return SpanSet((), keep, self.mask_kind)
        if rng.random() < self.suffix_prob:
            return SpanSet(((keep - length, keep),), keep, self.mask_kind, eop=False)
        return SpanSet(tuple(place_spans(np.array([length]), keep, rng)), keep, self.mask_kind)


class SuffixSpanSampler(SpanSamplerBase):
    """One span at the end of the text, its length a uniform fraction in
    ``[min_ratio, max_ratio]`` of the text, with [eop]: GLM-130B's [gMASK] (a prefix kept as
    context, the rest masked) and ``document_suffix`` (glmlab's former document level)."""

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


def document_suffix_sampler(
    min_ratio: float = 0.5, max_ratio: float = 1.0, mask_kind: MaskKind = "gMASK"
) -> SuffixSpanSampler:
    """Always a suffix of ``min_ratio..max_ratio`` of the text, with [eop] (not the
    reference's document level: kept as a named option and for evaluation)."""
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
        "document": DocumentSpanSampler,
        "document_suffix": document_suffix_sampler,
        "gmask": gmask_sampler,
    }
