"""What every training objective is: :class:`Objective` turns texts into samples that fit
their row, and names the format in which a model it trained reads the evaluation suite's
items (:attr:`Objective.item_format`, :mod:`glmlab.eval.formats`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from glmlab.objective.sample import fill_row
from glmlab.structures import GLMSample, TokenizedText

__all__ = [
    "Objective",
]


class Objective:
    """Turns texts into training samples that fit their row."""

    name: str = "objective"
    item_format: ClassVar[str]
    """How a model trained with this objective reads the evaluation suite's items: a name
    in :data:`glmlab.eval.formats.FORMATS` (``glm``: the GLM sample builder, which needs the
    objective's ``specials``, ``sentinels``, ``sentinel_position`` and ``samplers``; ``mlm``
    needs ``specials``; ``clm`` nothing)."""

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        """One sample for ``text`` in at most ``max_len`` tokens."""
        raise NotImplementedError

    def build_rows(
        self,
        rows: Sequence[Sequence[TokenizedText]],
        *,
        seq_len: int,
        rng: np.random.Generator,
        row_rngs: Sequence[np.random.Generator],
    ) -> list[list[GLMSample]]:
        """One batch: the samples of each row (its pieces side by side in ``seq_len``).
        ``rng`` draws what belongs to the whole batch, ``row_rngs[r]`` what belongs to row
        ``r``. By default every piece is built on its own (:func:`fill_row`)."""
        return [
            fill_row(pieces, lambda t, n, g=g: self.build(t, max_len=n, rng=g), seq_len=seq_len)
            for pieces, g in zip(rows, row_rngs, strict=True)
        ]
