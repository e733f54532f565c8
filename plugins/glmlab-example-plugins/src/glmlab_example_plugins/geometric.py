"""SpanBERT's span masking as a glmlab span sampler (Joshi et al., 2020).

Span lengths follow a geometric distribution Geo(p) truncated to ``1..max_span_len``
(SpanBERT: p = 0.2, at most 10 tokens, mean 3.8). Spans are drawn until ``mask_ratio`` of
the kept tokens are covered, the last one trimmed so that the count is exact, and placed
at random with at least one unmasked token between two spans (glmlab's
:func:`~glmlab.plugin.helpers.place_spans`, as GLM places its spans). Part A replaces
each span with one ``[MASK]``; glmlab's objective then builds Part B. SpanBERT measures
lengths in words; here they are tokens.
"""

from __future__ import annotations

import numpy as np

from glmlab import hookimpl
from glmlab.plugin.base import SpanSamplerBase
from glmlab.plugin.helpers import place_spans
from glmlab.structures import MaskKind, SpanSet, TokenizedText

GLMLAB_API_VERSION = 2  # the hook API this module implements; glmlab refuses a mismatch


class GeometricSpanSampler(SpanSamplerBase):
    """Built as ``geometric`` with options ``p``, ``max_span_len``, ``mask_ratio``, ``mask_kind``."""

    def __init__(
        self,
        p: float = 0.2,
        max_span_len: int = 10,
        mask_ratio: float = 0.15,
        mask_kind: MaskKind = "MASK",
    ) -> None:
        if not 0 < p <= 1 or max_span_len < 1:
            raise ValueError(f"need 0 < p <= 1 and max_span_len >= 1, got p={p}, {max_span_len}")
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.support = np.arange(1, max_span_len + 1)
        pmf = p * (1 - p) ** (self.support - 1)
        self.probs = pmf / pmf.sum()  # truncation renormalises: Geo(0.2) on 1..10 has mean 3.8
        self.mask_ratio = mask_ratio
        self.mask_kind = mask_kind

    def _lengths(self, target: int, rng: np.random.Generator) -> list[int]:
        lengths, covered = [], 0
        while covered < target:
            n = min(int(rng.choice(self.support, p=self.probs)), target - covered)
            lengths.append(n)
            covered += n
        return lengths

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len)
        while True:
            target = int(self.mask_ratio * keep)
            if target < 1:
                return SpanSet((), keep, self.mask_kind)
            lengths = self._lengths(target, rng)
            while len(lengths) > 1 and sum(lengths) + len(lengths) - 1 > keep:
                lengths.pop()  # too many spans to keep a gap between each: drop the last
            if keep + 2 * len(lengths) <= max_len:
                return SpanSet(tuple(place_spans(lengths, keep, rng)), keep, self.mask_kind)
            keep = max(1, max_len - 2 * len(lengths))  # drop the tail so Part B fits; redraw


@hookimpl
def glmlab_span_samplers() -> dict[str, type[GeometricSpanSampler]]:
    return {"geometric": GeometricSpanSampler}
