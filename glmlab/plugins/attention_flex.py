"""The ``flex`` attention backend: FlexAttention with a block mask read off the layout.

``prepare`` turns the layout's per-column ``segment_ids`` and ``prefix_end`` into a
``mask_mod`` (same segment, and key before the prefix end or at most the query; padding
sees only itself) and a ``BlockMask`` over 128 x 128 tiles, once per forward; the kernel
skips empty tiles and applies the mask only on partial ones, so no L x L mask exists.

FlexAttention is fast only compiled: inside a compiled model (the trainer's default on
CUDA) it is traced with the model; called eagerly on CUDA, ``attend`` uses a compiled
``flex_attention``. On the CPU, torch 2.13 runs FlexAttention forward only (no backward),
so the backend reports itself unavailable there; its forward still runs, which the tests
use to check it against ``eager`` without a GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from glmlab import hookimpl
from glmlab.plugin.base import AttentionBackendBase
from glmlab.structures import AttentionLayout


@functools.cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    return torch.compile(flex_attention, dynamic=False)


class FlexAttention(AttentionBackendBase):
    """GLM attention with ``torch.nn.attention.flex_attention`` and a layout block mask."""

    supports_bias = False  # a bias would be a score_mod over (B, H, L, L): not wired in

    def is_available(self, device: torch.device) -> bool:
        return device.type == "cuda" and torch.cuda.is_available()

    def prepare(self, layout: AttentionLayout) -> BlockMask:
        seg, prefix_end = layout.segment_ids, layout.prefix_end

        def glm_mask(
            b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor
        ) -> torch.Tensor:
            same = (seg[b, q] == seg[b, k]) & (seg[b, q] >= 0)
            return (same & ((k < prefix_end[b, q]) | (k <= q))) | (q == k)

        L = layout.seq_len
        return create_block_mask(glm_mask, layout.batch_size, None, L, L, device=seg.device)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: BlockMask,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if bias is not None:
            raise ValueError("the flex backend takes no additive attention bias")
        # Traced with a compiled model, or the CPU's forward-only path: the plain function.
        plain = torch.compiler.is_compiling() or q.device.type != "cuda"
        return (flex_attention if plain else _compiled_flex())(q, k, v, block_mask=prepared)


@hookimpl
def glmlab_attention_backends() -> dict[str, type[FlexAttention]]:
    return {"flex": FlexAttention}
