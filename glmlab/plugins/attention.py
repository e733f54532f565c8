"""Built-in attention backends: ``eager`` (the reference) and ``sdpa``.

Both consume the layout's dense boolean mask, built once per batch by ``prepare`` and
broadcast over heads. Every row of it allows at least the diagonal, so no softmax row is
empty (padding attends to itself). Both take a positional scheme's additive ``bias``: it is
added to the scores and the disallowed positions are then set to -inf, so a bias never
reopens a masked position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from glmlab import hookimpl
from glmlab.plugin.base import AttentionBackendBase
from glmlab.structures import AttentionLayout


class DenseMaskAttention(AttentionBackendBase):
    """Shared ``is_available`` / ``prepare`` of the dense-mask backends."""

    supports_bias = True
    supports_dropout = True  # dropout_p: dropout on the attention probabilities

    def is_available(self, device: torch.device) -> bool:
        return True

    def prepare(self, layout: AttentionLayout) -> torch.Tensor:
        """(B, 1, L, L) bool, True where attention is allowed."""
        return layout.dense_mask().unsqueeze(1)


class EagerAttention(DenseMaskAttention):
    """Explicit ``softmax(QK^T / sqrt(D))V`` in float32: the reference other backends match."""

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: torch.Tensor,
        bias: torch.Tensor | None = None,
        dropout_p: float = 0.0,
    ) -> torch.Tensor:
        scores = (q.float() @ k.float().transpose(-2, -1)) * q.shape[-1] ** -0.5
        if bias is not None:
            scores = scores + bias.float()
        probs = scores.masked_fill(~prepared, float("-inf")).softmax(dim=-1)
        if dropout_p > 0:
            probs = torch.nn.functional.dropout(probs, dropout_p)
        return (probs @ v.float()).to(q.dtype)


class SDPAttention(DenseMaskAttention):
    """``torch.nn.functional.scaled_dot_product_attention`` with the dense boolean mask."""

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: torch.Tensor,
        bias: torch.Tensor | None = None,
        dropout_p: float = 0.0,
    ) -> torch.Tensor:
        if bias is not None:
            # sdpa takes one mask: a float one (in q's dtype) carries both bias and mask.
            prepared = bias.to(q.dtype).masked_fill(~prepared, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=prepared, dropout_p=dropout_p)


@hookimpl
def glmlab_attention_backends() -> dict[str, type[DenseMaskAttention]]:
    return {"eager": EagerAttention, "sdpa": SDPAttention}
