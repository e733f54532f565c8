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
from torch import nn

from glmlab import hookimpl

GLMLAB_API_VERSION = 1  # the hook API this module implements; glmlab refuses a mismatch


class ALiBi(nn.Module):
    """Built as ``alibi`` with option ``pin_part_b``; glmlab passes the fixed arguments."""

    def __init__(
        self, *, dim: int, n_heads: int, head_dim: int, max_positions: int, pin_part_b: bool = False
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.pin_part_b = pin_part_b
        # Derived, not learned: a non-persistent buffer follows .to(device) and stays out of
        # checkpoints.
        slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1, dtype=torch.float32) / n_heads)
        self.register_buffer("slopes", slopes, persistent=False)

    def embed(self, position_ids: torch.Tensor) -> None:
        return None

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k

    def attention_bias(self, position_ids: torch.Tensor) -> torch.Tensor:
        """(B, H, L, L) float32 ``-m_h * |pos_i - pos_j|`` for ``position_ids`` (B, 2, L)."""
        pos = position_ids[:, 0] if self.pin_part_b else position_ids[:, 0] + position_ids[:, 1]
        distance = (pos.unsqueeze(-1) - pos.unsqueeze(-2)).abs().float().unsqueeze(1)
        # float32 slopes even when the model was cast to bf16: the backend casts the sum.
        return -self.slopes.float().view(1, -1, 1, 1) * distance


@hookimpl
def glmlab_positional_schemes() -> dict[str, type[ALiBi]]:
    return {"alibi": ALiBi}
