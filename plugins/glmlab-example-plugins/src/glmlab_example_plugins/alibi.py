"""ALiBi (Press et al., 2022, "Train Short, Test Long") as a glmlab positional scheme.

No position embedding and no rotation: each head ``h = 1..H`` adds ``-m_h * |i - j|`` to
the attention score of query ``i`` and key ``j``, with slopes ``m_h = 2^(-8h/H)``. The
distance is taken over GLM's 1D position ``pos1 + pos2`` (Part B counts on from its
span's mask) or, with ``pin_part_b``, ``pos1`` alone. The bias goes through glmlab's
optional ``attention_bias`` hook, so it needs an attention backend with
``supports_bias = True`` (``eager``, ``sdpa``).
"""

from __future__ import annotations

import torch

from glmlab import hookimpl
from glmlab.plugin.base import PositionalSchemeBase
from glmlab.plugin.helpers import positions_1d

GLMLAB_API_VERSION = 2  # the hook API this module implements; glmlab refuses a mismatch


class ALiBi(PositionalSchemeBase):
    """Built as ``alibi`` with option ``pin_part_b``; of the model settings glmlab offers,
    it declares only ``n_heads``. No embedding and no rotation: the base's defaults."""

    def __init__(self, *, n_heads: int, pin_part_b: bool = False) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.pin_part_b = pin_part_b
        # Derived, not learned: a non-persistent buffer follows .to(device) and stays out of
        # checkpoints.
        slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1, dtype=torch.float32) / n_heads)
        self.register_buffer("slopes", slopes, persistent=False)

    def attention_bias(self, position_ids: torch.Tensor) -> torch.Tensor:
        """(B, H, L, L) float32 ``-m_h * |pos_i - pos_j|`` for ``position_ids`` (B, 2, L)."""
        pos = positions_1d(position_ids, pin_part_b=self.pin_part_b)
        distance = (pos.unsqueeze(-1) - pos.unsqueeze(-2)).abs().float().unsqueeze(1)
        # float32 slopes even when the model was cast to bf16: the backend casts the sum.
        return -self.slopes.float().view(1, -1, 1, 1) * distance


@hookimpl
def glmlab_positional_schemes() -> dict[str, type[ALiBi]]:
    return {"alibi": ALiBi}
