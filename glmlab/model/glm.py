"""The GLM Transformer, assembled from plugins.

One stack of blocks over Part A + Part B. Where nanoGPT fixes a choice, a plugin stands:
the positional scheme (additive embedding and/or rotation of q and k), the norm layout
(where the LayerNorms and residuals sit) and the attention backend (how the GLM mask is
applied). This module never imports a built-in plugin; :mod:`glmlab.model.build` looks them
up by name.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from glmlab.interfaces import AttentionBackend, NormLayout, PositionalScheme
from glmlab.structures import AttentionLayout, Batch

Rotate = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class GLMConfig:
    """Shape and init of the Transformer; the plugins are chosen separately.

    ``ffn``: ``gelu`` (tanh-GELU MLP, inner ``ffn_mult * dim``, GLM) or ``geglu``
    (``x1 * gelu(x2)``, inner ``2/3 * ffn_mult * dim`` rounded up to a multiple of 64 so
    the parameter count matches the GELU MLP; GLM-130B's 8h/3).
    """

    vocab_size: int
    n_layers: int
    dim: int
    n_heads: int
    max_positions: int
    ffn: Literal["gelu", "geglu"] = "gelu"
    ffn_mult: int = 4
    tie_embeddings: bool = True
    dropout: float = 0.0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.ffn not in ("gelu", "geglu"):
            raise ValueError(f"ffn must be 'gelu' or 'geglu', got {self.ffn!r}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_inner(self) -> int:
        if self.ffn == "gelu":
            return self.ffn_mult * self.dim
        return 64 * math.ceil(2 * self.ffn_mult * self.dim / 3 / 64)

    @property
    def out_init_std(self) -> float:
        """Init std of the projections that write into the residual stream (GPT-2 / Megatron)."""
        return self.init_std / math.sqrt(2 * self.n_layers)


def _init_linear(linear: nn.Linear, std: float) -> None:
    nn.init.normal_(linear.weight, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class Attention(nn.Module):
    """Multi-head self-attention; rotation and masking come from the plugins.

    Weights are initialised here, before the norm layout wraps the module, so that a
    layout's rescaling (DeepNorm's beta) applies to the final init.
    """

    def __init__(self, config: GLMConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)
        self.drop = nn.Dropout(config.dropout)
        _init_linear(self.qkv, config.init_std)
        _init_linear(self.out, config.out_init_std)

    def deepnorm_scaled_parameters(self) -> list[torch.Tensor]:
        """The value rows of the fused qkv weight and the output weight (views, in place)."""
        v_rows = self.qkv.weight.shape[0] * 2 // 3
        return [self.qkv.weight[v_rows:], self.out.weight]

    def forward(self, x: torch.Tensor, *, rotate: Rotate, attend: Attend) -> torch.Tensor:
        q, k, v = rearrange(
            self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.n_heads
        )
        q, k = rotate(q, k)
        y = rearrange(attend(q, k, v), "b h l d -> b l (h d)")
        return self.drop(self.out(y))


class MLP(nn.Module):
    """tanh-GELU MLP (GLM) or GeGLU (GLM-130B)."""

    def __init__(self, config: GLMConfig) -> None:
        super().__init__()
        self.gated = config.ffn == "geglu"
        inner = config.ffn_inner
        self.fc = nn.Linear(config.dim, 2 * inner if self.gated else inner)
        self.proj = nn.Linear(inner, config.dim)
        self.drop = nn.Dropout(config.dropout)
        _init_linear(self.fc, config.init_std)
        _init_linear(self.proj, config.out_init_std)

    def deepnorm_scaled_parameters(self) -> list[torch.Tensor]:
        return [self.fc.weight, self.proj.weight]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.gated:
            h1, h2 = h.chunk(2, dim=-1)
            h = h1 * F.gelu(h2)
        else:
            h = F.gelu(h, approximate="tanh")
        return self.drop(self.proj(h))


class Block(nn.Module):
    """Attention then MLP, each wrapped by the norm layout."""

    def __init__(self, config: GLMConfig, norm_layout: NormLayout) -> None:
        super().__init__()
        self.attn = norm_layout.wrap(Attention(config), config.dim, "attention")
        self.mlp = norm_layout.wrap(MLP(config), config.dim, "mlp")

    def forward(self, x: torch.Tensor, *, rotate: Rotate, attend: Attend) -> torch.Tensor:
        return self.mlp(self.attn(x, rotate=rotate, attend=attend))


class GLMModel(nn.Module):
    """GLM: token embedding (+ positional embedding), blocks, final norm, tied head."""

    def __init__(
        self,
        config: GLMConfig,
        *,
        positional: PositionalScheme,
        norm_layout: NormLayout,
        attention: AttentionBackend,
    ) -> None:
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.dim)
        self.positional = positional
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, norm_layout) for _ in range(config.n_layers))
        self.norm = norm_layout.final_norm(config.dim)
        self.head = (
            None if config.tie_embeddings else nn.Linear(config.dim, config.vocab_size, bias=False)
        )
        self.attention = attention
        self.attention_name: str | None = None  # set by build_model
        # Blocks initialise themselves (before the norm layout's rescaling); the embeddings,
        # learned position tables included, and an untied head get N(0, init_std) here.
        for m in [self.tok, self.head, *positional.modules()]:
            if isinstance(m, nn.Embedding | nn.Linear):
                nn.init.normal_(m.weight, std=config.init_std)

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, layout: AttentionLayout
    ) -> torch.Tensor:
        """Hidden states (B, L, dim) after the final norm, for ``input_ids`` (B, L) and
        ``position_ids`` (B, 2, L)."""
        x = self.tok(input_ids)
        pos = self.positional.embed(position_ids)
        if pos is not None:
            x = x + pos
        x = self.drop(x)
        # The mask is built once per forward and shared by every layer.
        attend = functools.partial(self.attention.attend, prepared=self.attention.prepare(layout))
        rotate = functools.partial(self.positional.rotate, position_ids=position_ids)
        for block in self.blocks:
            x = block(x, rotate=rotate, attend=attend)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., vocab_size), through the token embedding when tied."""
        return F.linear(hidden, self.tok.weight) if self.head is None else self.head(hidden)

    def loss(self, batch: Batch) -> torch.Tensor:
        """``sum(CE * w) / sum(w)`` over ``batch.loss_positions``, ``w`` the loss mask there.

        The head runs only at the loss positions (Part B is ~20% of a GLM batch). With no
        loss positions the result is a zero that still backpropagates.
        """
        hidden = self(batch.input_ids, batch.position_ids, batch.layout)
        where = batch.loss_positions
        logits = self.logits(hidden.reshape(-1, self.config.dim)[where]).float()
        ce = F.cross_entropy(logits, batch.target_ids.reshape(-1)[where], reduction="none")
        weight = batch.loss_mask.reshape(-1)[where].float()
        # The clamp only matters for an empty selection (0 / 0); it keeps the grad finite.
        return (ce * weight).sum() / weight.sum().clamp_min(torch.finfo(torch.float32).tiny)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` leaves out the token and positional
        embeddings (a tied head shares the token embedding, so it goes too)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= sum(p.numel() for p in [*self.tok.parameters(), *self.positional.parameters()])
        return n
