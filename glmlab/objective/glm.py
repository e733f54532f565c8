"""The GLM objective: autoregressive blank infilling over spans drawn by span-sampler
plugins (:class:`GLMObjective`); the sample layout itself is :mod:`glmlab.objective.sample`.

The objective turns a :class:`TokenizedText` into a :class:`GLMSample` that fits a row
budget; all randomness comes from the generator it is given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glmlab.config.schema import ObjectiveConfig
from glmlab.objective.base import Objective
from glmlab.objective.sample import fill_row, sample_from_spans
from glmlab.plugin.base import SpanSamplerBase, check_base
from glmlab.plugin.guards import SamplerInvariantError, check_span_set, sampler_label
from glmlab.structures import GLMSample, SpanSet, SpecialTokens, TokenizedText

__all__ = [
    "TASK_SAMPLING",
    "GLMObjective",
]


TASK_SAMPLING = ("batch", "sample")


class GLMObjective(Objective):
    """Blank infilling with a weighted mixture of span samplers (the "tasks").

    ``samplers`` is a list of ``(registry name, sampler, weight)``. ``task_sampling``:
    ``batch`` draws one sampler per batch, as the reference does; ``sample`` draws one per
    piece. ``shuffle_spans`` draws Part B's order at random (the paper's default);
    ``sentinels`` numbers the spans by their place in Part B: the first uses the plain
    [MASK] / [sop], the j-th [MASK_j] / [sop_j] (sentence and document spans keep their own
    mask token), with Part B's first position row pinned to ``sentinel_position`` (the
    "w/ sentinel tokens" ablation as the reference builds it) or, when it is None, kept at
    each span's mask position as without sentinels (the arms then differ in tokens alone).

    A sampler may define ``for_batch(texts, rng)`` (what it draws once per batch, e.g. the
    document length; called with the batch's pieces) and ``sample_row(texts, max_len, rng)``
    (one budget over a packed row's pieces, e.g. sentences); see docs/PLUGINS.md.
    """

    name = "glm"
    item_format = "glm"

    def __init__(
        self,
        samplers: list[tuple[str, object, float]],
        specials: SpecialTokens,
        *,
        shuffle_spans: bool = ObjectiveConfig.shuffle_spans,
        sentinels: bool = ObjectiveConfig.sentinels,
        sentinel_position: int | None = None,
        check_invariants: bool = True,
        task_sampling: str = ObjectiveConfig.task_sampling,
    ) -> None:
        if not samplers:
            raise ValueError(
                "objective.samplers is empty: give at least one span sampler with weight > 0"
            )
        weights = np.asarray([w for _, _, w in samplers], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"sampler weights must be >= 0 and sum > 0, got {weights.tolist()}")
        if sentinels and not specials.sentinel_masks:
            raise ValueError("sentinels=true needs sentinel tokens: set data.n_sentinels > 0")
        if task_sampling not in TASK_SAMPLING:
            raise ValueError(
                f"objective.task_sampling must be one of {list(TASK_SAMPLING)}, got {task_sampling!r}"
            )
        for name, sampler, _ in samplers:  # every member of the base is called directly
            check_base("span_sampler", sampler, sampler_label(name))
        self.samplers: list[tuple[str, SpanSamplerBase, float]] = list(samplers)
        self.probs = weights / weights.sum()
        # The draws of rng.choice(len(samplers), p=probs), without its per-call checks of p.
        self.cdf = self.probs.cumsum()
        self.cdf /= self.cdf[-1]
        self.specials = specials
        self.shuffle_spans = shuffle_spans
        self.sentinels = sentinels
        self.sentinel_position = sentinel_position
        self.check_invariants = check_invariants
        self.task_sampling = task_sampling

    def _draw_task(self, rng: np.random.Generator) -> int:
        if len(self.samplers) == 1:
            return 0
        return int(self.cdf.searchsorted(rng.random(), "right"))

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        name, sampler, _ = self.samplers[self._draw_task(rng)]
        return self._sample(text, sampler, name, max_len=max_len, rng=rng)

    def build_rows(
        self,
        rows: Sequence[Sequence[TokenizedText]],
        *,
        seq_len: int,
        rng: np.random.Generator,
        row_rngs: Sequence[np.random.Generator],
    ) -> list[list[GLMSample]]:
        tasks = (
            [self._draw_task(rng)] if self.task_sampling == "batch" else range(len(self.samplers))
        )
        pieces = [p for row in rows for p in row]
        bound = {}
        for k in tasks:  # what a sampler draws once per batch
            name, sampler, _ = self.samplers[k]
            bound[k] = sampler.for_batch(pieces, rng=rng)
            check_base("span_sampler", bound[k], sampler_label(name))
        out = []
        for row, g in zip(rows, row_rngs, strict=True):
            if self.task_sampling == "batch":
                k = tasks[0]
                name = self.samplers[k][0]
                span_sets = bound[k].sample_row(row, max_len=seq_len, rng=g)
                if span_sets is not None:  # one budget over the row's pieces
                    out.append(self._row_from_spans(row, span_sets, name, seq_len, g))
                    continue

            def build(text: TokenizedText, budget: int, g: np.random.Generator = g) -> GLMSample:
                k = tasks[0] if self.task_sampling == "batch" else self._draw_task(g)
                name = self.samplers[k][0]
                return self._sample(text, bound[k], name, max_len=budget, rng=g)

            out.append(fill_row(row, build, seq_len=seq_len))
        return out

    def _row_from_spans(
        self,
        row: Sequence[TokenizedText],
        span_sets: list[SpanSet],
        name: str,
        seq_len: int,
        rng: np.random.Generator,
    ) -> list[GLMSample]:
        if self.check_invariants and not 0 < len(span_sets) <= len(row):
            raise SamplerInvariantError(
                f"{sampler_label(name)} broke an invariant: sample_row() returned "
                f"{len(span_sets)} span sets for a row of {len(row)} pieces"
            )
        samples, used = [], 0
        for text, spans in zip(row, span_sets, strict=False):
            sample = self._from_spans(text, spans, name, max_len=seq_len - used, rng=rng)
            samples.append(sample)
            used += len(sample)
        return samples

    def _sample(
        self,
        text: TokenizedText,
        sampler: object,
        name: str,
        *,
        max_len: int,
        rng: np.random.Generator,
    ) -> GLMSample:
        spans = sampler.sample(text, max_len=max_len, rng=rng)
        return self._from_spans(text, spans, name, max_len=max_len, rng=rng)

    def _from_spans(
        self,
        text: TokenizedText,
        spans: SpanSet,
        name: str,
        *,
        max_len: int,
        rng: np.random.Generator,
    ) -> GLMSample:
        """``spans`` of ``text`` as a GLM sample: Part B's order drawn, mask tokens chosen."""
        if self.check_invariants:
            check_span_set(spans, len(text), max_len, name)
        m = len(spans.spans)
        order = rng.permutation(m) if self.shuffle_spans else np.arange(m)
        if self.sentinels and m > len(self.specials.sentinel_masks):
            raise ValueError(
                f"sampler '{name}' drew {m} spans but the tokenizer has "
                f"{len(self.specials.sentinel_masks)} sentinels: raise data.n_sentinels"
            )
        return sample_from_spans(
            text.ids,
            spans,
            self.specials,
            order=order,
            sentinels=self.sentinels,
            sentinel_position=self.sentinel_position,
        )
