"""The baselines GLM is compared with: BERT's masked LM (:class:`MLMObjective`) and GPT's
left-to-right LM (:class:`CLMObjective`), both as samples of the same model."""

from __future__ import annotations

import numpy as np

from glmlab.config.schema import ObjectiveConfig
from glmlab.objective.base import Objective
from glmlab.structures import GLMSample, SpecialTokens, TokenizedText

__all__ = [
    "CLMObjective",
    "MLMObjective",
]


class MLMObjective(Objective):
    """BERT's masked LM: ``ratio`` of the tokens are predicted; of those 80% become [MASK],
    10% a random token, 10% stay. Everything is Part A (sep = length: bidirectional), the
    loss sits on the chosen positions, and targets are the original tokens in place."""

    name = "mlm"
    item_format = "mlm"

    def __init__(
        self,
        specials: SpecialTokens,
        *,
        vocab_size: int,
        n_special: int,
        ratio: float = ObjectiveConfig.mlm_ratio,
    ) -> None:
        self.specials, self.vocab_size, self.n_special, self.ratio = (
            specials,
            vocab_size,
            n_special,
            ratio,
        )

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        ids = text.ids[:max_len]
        n = ids.shape[0]
        n_pick = max(1, round(self.ratio * n))
        picked = rng.choice(n, size=n_pick, replace=False)
        roll = rng.random(n_pick)
        inputs = ids.copy()
        inputs[picked[roll < 0.8]] = self.specials.mask
        rand = picked[(roll >= 0.8) & (roll < 0.9)]
        inputs[rand] = rng.integers(self.n_special, self.vocab_size, size=rand.shape[0])
        loss_mask = np.zeros(n, np.float32)
        loss_mask[picked] = 1.0
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(inputs, positions, ids.copy(), loss_mask, sep=n)


class CLMObjective(Objective):
    """GPT's left-to-right LM: input ``x_0..x_{n-2}`` predicts ``x_1..x_{n-1}``; sep = 0
    (fully causal), loss on every position."""

    name = "clm"
    item_format = "clm"

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        ids = text.ids[: max_len + 1]
        n = ids.shape[0] - 1
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(ids[:-1].copy(), positions, ids[1:].copy(), np.ones(n, np.float32), sep=0)
