"""How each model family reads an item (:class:`ItemFormat`): a GLM model through the
training sample builder, an MLM or CLM model as it was trained. Each objective names its
format (``Objective.item_format``); :func:`item_format` looks it up in :data:`FORMATS`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from glmlab.objective.base import Objective
from glmlab.objective.glm import GLMObjective
from glmlab.objective.sample import sample_from_spans
from glmlab.structures import GLMSample, MaskKind, SpanSet, SpecialTokens

__all__ = [
    "CLMFormat",
    "GLMFormat",
    "ItemFormat",
    "MLMFormat",
    "item_format",
]


Order = Sequence[int] | np.ndarray | None


class ItemFormat(Protocol):
    """How a model family reads an item: the passage and its spans become one sample whose
    loss mask marks the scored targets. ``cloze`` selects the multiple-choice score;
    ``order`` is Part B's order of the spans (text order when None; only GLM has a Part B).
    :meth:`choice` scores a one-token answer of a classification item."""

    orders_matter: bool  # whether ``order`` changes the sample (only with a Part B)

    def sample(
        self, ids: np.ndarray, spans: SpanSet, *, cloze: bool, order: Order = None
    ) -> GLMSample: ...

    def choice(self, ids: np.ndarray, spans: SpanSet) -> GLMSample: ...


class GLMFormat:
    """A GLM model's reading: the training sample builder (mask tokens, sentinels, 2D
    positions), spans in text order. Infilling scores the span tokens; the cloze score adds
    each span's [eop] (GLM's multi-token cloze rule)."""

    orders_matter = True  # Part B's order changes the sample

    @classmethod
    def for_objective(cls, objective: GLMObjective, *, max_len: int) -> GLMFormat:
        return cls(objective, max_len=max_len)

    def __init__(self, objective: GLMObjective, *, max_len: int) -> None:
        self.specials = objective.specials
        self.sentinels = objective.sentinels
        self.sentinel_position = objective.sentinel_position
        # Each task uses the mask token the model was trained with for that span kind.
        self.trained_kinds = {s.mask_kind for _, s, _ in objective.samplers}
        self.max_len = max_len

    def mask_kind(self, natural: MaskKind) -> MaskKind:
        """``natural`` if the model was trained with it, else [MASK] if it was, else the
        first (alphabetically) mask token it knows."""
        if natural in self.trained_kinds:
            return natural
        return "MASK" if "MASK" in self.trained_kinds else min(self.trained_kinds)

    def build(self, ids: np.ndarray, spans: SpanSet, order: Order = None) -> GLMSample:
        """``ids`` with ``spans`` laid out exactly as in training, Part B in ``order``
        (text order when None)."""
        if spans.glm_length() > self.max_len:
            raise ValueError(
                f"{spans.glm_length()} tokens with Part B exceed the model's {self.max_len}"
            )
        return sample_from_spans(
            ids,
            spans,
            self.specials,
            order=order,
            sentinels=self.sentinels,
            sentinel_position=self.sentinel_position,
        )

    def sample(
        self, ids: np.ndarray, spans: SpanSet, *, cloze: bool, order: Order = None
    ) -> GLMSample:
        kind = self.mask_kind(spans.mask_kind)
        s = self.build(ids, dataclasses.replace(spans, mask_kind=kind), order)
        if cloze:
            return s
        content = s.loss_mask * (s.target_ids != self.specials.eop)
        return dataclasses.replace(s, loss_mask=content.astype(np.float32))

    def choice(self, ids: np.ndarray, spans: SpanSet) -> GLMSample:
        """GLM's single-token rule: the answer's logit at [sop] ([eop] not scored)."""
        return self.sample(ids, spans, cloze=False)


class MLMFormat:
    """A BERT model's reading: every span token becomes [MASK] (the span lengths are
    therefore given away), the whole passage is visible, each masked token is scored on
    its own."""

    orders_matter = False

    @classmethod
    def for_objective(cls, objective: Objective, *, max_len: int) -> MLMFormat:
        return cls(objective.specials)

    def __init__(self, specials: SpecialTokens) -> None:
        self.mask_id = specials.mask

    def sample(
        self, ids: np.ndarray, spans: SpanSet, *, cloze: bool, order: Order = None
    ) -> GLMSample:
        ids = ids[: spans.keep]
        n = ids.shape[0]
        inputs = ids.copy()
        scored = np.zeros(n, np.float32)
        for s, e in spans.spans:
            inputs[s:e] = self.mask_id
            scored[s:e] = 1.0
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(inputs, positions, ids.copy(), scored, sep=n)

    def choice(self, ids: np.ndarray, spans: SpanSet) -> GLMSample:
        """The answer's logit at its [MASK]."""
        return self.sample(ids, spans, cloze=True)


class CLMFormat:
    """A GPT model's reading: the uncorrupted passage left to right. Infilling scores the
    span tokens given everything before them; the cloze score adds every token after the
    answer, the only way a left-to-right model can use the right context."""

    orders_matter = False

    @classmethod
    def for_objective(cls, objective: Objective, *, max_len: int) -> CLMFormat:
        return cls()

    def sample(
        self, ids: np.ndarray, spans: SpanSet, *, cloze: bool, order: Order = None
    ) -> GLMSample:
        ids = ids[: spans.keep]
        n = ids.shape[0] - 1
        scored = np.zeros(n, np.float32)  # position i predicts token i + 1
        for s, e in spans.spans:
            if s < 1:
                raise ValueError("a left-to-right model cannot score a span at token 0")
            scored[s - 1 : (n if cloze else e - 1)] = 1.0
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(ids[:-1].copy(), positions, ids[1:].copy(), scored, sep=0)

    def choice(self, ids: np.ndarray, spans: SpanSet) -> GLMSample:
        """The answer and every token after it (the right context, as in cloze)."""
        return self.sample(ids, spans, cloze=True)


FORMATS: dict[str, Callable[..., ItemFormat]] = {
    "glm": GLMFormat.for_objective,
    "mlm": MLMFormat.for_objective,
    "clm": CLMFormat.for_objective,
}
"""Format name (what an objective's ``item_format`` says) -> ``f(objective, max_len=...)``."""


def item_format(objective: Objective, *, max_len: int) -> ItemFormat:
    """The format in which the model trained with ``objective`` reads the suite's items:
    the one its class names (``objective.item_format``)."""
    try:
        make = FORMATS[getattr(objective, "item_format", None)]
    except KeyError:
        raise ValueError(
            f"{type(objective).__name__}.item_format = "
            f"{getattr(objective, 'item_format', None)!r} is not an "
            f"item format; choose one of {sorted(FORMATS)}"
        ) from None
    return make(objective, max_len=max_len)
