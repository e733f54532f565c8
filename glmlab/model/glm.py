"""The GLM Transformer, assembled from plugins.

One stack of blocks over Part A + Part B. Where nanoGPT fixes a choice, a plugin stands:
the positional scheme (additive embedding and/or rotation of q and k), the norm layout
(where the LayerNorms and residuals sit) and the attention backend (how the GLM mask is
applied). This module never imports a built-in plugin; :mod:`glmlab.model.build` looks them
up by name.

The model checks what the plugins hand back with the guards of
:mod:`glmlab.plugin.guards` (shapes and dtypes only: no host sync), which raise
:class:`~glmlab.plugin.guards.PluginContractError` naming the plugin, its distribution and
the broken invariant, instead of failing somewhere deep inside a later layer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from glmlab.config.schema import ModelConfig
from glmlab.model.attention_select import AttentionSelection
from glmlab.model.loss import linear_cross_entropy, linear_token_scores, n_chunks
from glmlab.plugin.base import (
    AttentionBackendBase,
    NormLayoutBase,
    PositionalSchemeBase,
    check_base,
)
from glmlab.plugin.guards import (
    check_attend,
    check_attention_bias,
    check_block,
    check_embed,
    check_module,
    check_rotate,
)
from glmlab.structures import AttentionLayout, Batch

Rotate = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class GLMConfig:
    """Shape and init of the Transformer; the plugins are chosen separately.

    ``dropout``: on the embeddings and each sublayer's output (the reference's hidden
    dropout); ``attention_dropout``: on the attention probabilities, in backends with
    ``supports_dropout``. ``ffn``: ``gelu`` (tanh-GELU MLP, inner ``ffn_mult * dim``, GLM) or ``geglu``
    (``x1 * gelu(x2)``, inner ``2/3 * ffn_mult * dim`` rounded up to a multiple of 64 so
    the parameter count matches the GELU MLP; GLM-130B's 8h/3).
    """

    vocab_size: int
    n_layers: int
    dim: int
    n_heads: int
    max_positions: int
    # The defaults are the config schema's (glmlab/config/schema.py, ModelConfig), not copies.
    ffn: Literal["gelu", "geglu"] = ModelConfig.ffn  # type: ignore[assignment]
    ffn_mult: int = ModelConfig.ffn_mult
    tie_embeddings: bool = ModelConfig.tie_embeddings
    dropout: float = ModelConfig.dropout
    attention_dropout: float = ModelConfig.attention_dropout
    init_std: float = ModelConfig.init_std
    norm_eps: float = ModelConfig.norm_eps
    """The LayerNorms' epsilon, given to the norm layout's factory as ``eps``."""

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

    Weights start from GLM's init (N(0, init_std), the output projection
    init_std / sqrt(2N)); a norm layout with ``init_projections`` then owns the init of the
    named matrices in :meth:`projections`.
    """

    def __init__(self, config: GLMConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)
        self.drop = nn.Dropout(config.dropout)
        _init_linear(self.qkv, config.init_std)
        _init_linear(self.out, config.out_init_std)

    def projections(self) -> dict[str, torch.Tensor]:
        """The weight matrices by role: ``q``, ``k``, ``v`` (row blocks of the fused qkv
        weight, views) and ``out``; a norm layout may re-initialise them in place."""
        q, k, v = self.qkv.weight.chunk(3, dim=0)
        return {"q": q, "k": k, "v": v, "out": self.out.weight}

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

    def projections(self) -> dict[str, torch.Tensor]:
        """The weight matrices by role: ``ffn_in`` (both GeGLU halves) and ``ffn_out``."""
        return {"ffn_in": self.fc.weight, "ffn_out": self.proj.weight}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.gated:
            h1, h2 = h.chunk(2, dim=-1)
            h = h1 * F.gelu(h2)
        else:
            h = F.gelu(h, approximate="tanh")
        return self.drop(self.proj(h))


class Block(nn.Module):
    """Attention then MLP, each wrapped by the norm layout, whose ``init_projections``
    initialises the sublayers' named matrices (``q k v out``, ``ffn_in ffn_out``; see
    :meth:`Attention.projections`)."""

    def __init__(self, config: GLMConfig, norm_layout: NormLayoutBase) -> None:
        super().__init__()
        attn, mlp = Attention(config), MLP(config)
        with torch.no_grad():
            norm_layout.init_projections(attn.projections(), "attention")
            norm_layout.init_projections(mlp.projections(), "mlp")
        self.attn = norm_layout.wrap(attn, config.dim, "attention")
        self.mlp = norm_layout.wrap(mlp, config.dim, "mlp")

    def forward(self, x: torch.Tensor, *, rotate: Rotate, attend: Attend) -> torch.Tensor:
        return self.mlp(self.attn(x, rotate=rotate, attend=attend))


class GLMModel(nn.Module):
    """GLM: token embedding (+ positional embedding), blocks, final norm, tied head.

    ``labels`` maps a plugin kind (``positional``, ``norm_layout``, ``attention``) to how
    guard messages name that plugin (:func:`~glmlab.plugin.guards.plugin_label`);
    :func:`~glmlab.model.build.build_model` fills it from the registry, and a missing kind
    is named by its class.
    """

    def __init__(
        self,
        config: GLMConfig,
        *,
        positional: PositionalSchemeBase,
        norm_layout: NormLayoutBase,
        attention: AttentionBackendBase,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.labels = {
            "positional": f"positional plugin {type(positional).__name__}",
            "norm_layout": f"norm_layout plugin {type(norm_layout).__name__}",
            "attention": f"attention plugin {type(attention).__name__}",
            **(labels or {}),
        }
        check_module(positional, "the factory built", self.labels["positional"])
        # Every member of a plugin's base is called directly from here on.
        for kind, plugin in [
            ("positional", positional),
            ("norm_layout", norm_layout),
            ("attention", attention),
        ]:
            check_base(kind, plugin, self.labels[kind])
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.dim)
        self.positional = positional
        self.drop = nn.Dropout(config.dropout)
        # A layout may normalise the first block's input (GLM-130B's DeepNorm); None if not.
        self.input_norm = norm_layout.input_norm(config.dim)
        self.blocks = nn.ModuleList(Block(config, norm_layout) for _ in range(config.n_layers))
        self.norm = norm_layout.final_norm(config.dim)
        # A non-module here would be stored as a plain attribute: its parameters would
        # silently never train.
        for what, module in [
            *(("wrap()", m) for block in self.blocks for m in (block.attn, block.mlp)),
            ("final_norm()", self.norm),
            *([("input_norm()", self.input_norm)] if self.input_norm is not None else []),
        ]:
            check_module(module, f"{what} returned", self.labels["norm_layout"])
        self.head = (
            None if config.tie_embeddings else nn.Linear(config.dim, config.vocab_size, bias=False)
        )
        self.attention = attention
        # Set by glmlab.model.build.build_model: the backend's registry name (``auto``
        # resolved) and how it was chosen (an AttentionSelection).
        self.attention_name: str | None = None
        self.attention_selection: AttentionSelection | None = None
        # Blocks initialise themselves (before the norm layout's rescaling); the token
        # embedding and an untied head get N(0, init_std) here. The positional scheme owns
        # its parameters (it got ``init_std``): the model never touches them.
        for m in [self.tok, self.head]:
            if m is not None:
                nn.init.normal_(m.weight, std=config.init_std)

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, layout: AttentionLayout
    ) -> torch.Tensor:
        """Hidden states (B, L, dim) after the final norm, for ``input_ids`` (B, L) and
        ``position_ids`` (B, 2, L)."""
        x = self.tok(input_ids)
        pos = self.positional.embed(position_ids)
        if pos is not None:
            check_embed(pos, x, self.labels["positional"])
            x = x + pos
        x = self.drop(x)
        if self.input_norm is not None:
            x = self.input_norm(x)
        # The mask and the positional bias are built once per forward and shared by every layer.
        attend = functools.partial(
            self._attend,
            prepared=self.attention.prepare(layout),
            bias=self.attention_bias(position_ids),
        )
        rotate = functools.partial(self._rotate, position_ids=position_ids)
        for block in self.blocks:
            y = block(x, rotate=rotate, attend=attend)
            check_block(y, x, self.labels["norm_layout"])
            x = y
        return self.norm(x)

    def attention_bias(self, position_ids: torch.Tensor) -> torch.Tensor | None:
        """The positional scheme's additive attention bias for ``position_ids`` (None when
        it defines none), checked against the contract and the backend's ``supports_bias``."""
        bias = self.positional.attention_bias(position_ids)
        if bias is None:
            return None
        batch, length = position_ids.shape[0], position_ids.shape[-1]
        target = (batch, self.config.n_heads, length, length)
        check_attention_bias(
            bias,
            target,
            self.labels["positional"],
            self.labels["attention"],
            self.attention.supports_bias,
        )
        return bias

    def _rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rq, rk = self.positional.rotate(q, k, position_ids)
        check_rotate(rq, rk, q, k, self.labels["positional"])
        return rq, rk

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: object,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        # ``bias`` and ``dropout_p`` only when used: backends written without them keep working.
        extra: dict[str, object] = {} if bias is None else {"bias": bias}
        if self.training and self.config.attention_dropout > 0:
            extra["dropout_p"] = self.config.attention_dropout
        out = self.attention.attend(q, k, v, prepared, **extra)
        check_attend(out, q, self.labels["attention"])
        return out

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., vocab_size), through the token embedding when tied."""
        return F.linear(hidden, self.tok.weight) if self.head is None else self.head(hidden)

    def _head_inputs(
        self, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """The loss positions' hidden rows, the head's weight, their targets and loss-mask
        weights, and the chunk count: what both :meth:`loss` and :meth:`token_losses` use."""
        hidden = self(batch.input_ids, batch.position_ids, batch.layout)
        where = batch.loss_positions
        head = self.tok.weight if self.head is None else self.head.weight
        return (
            hidden.reshape(-1, self.config.dim)[where],
            head,
            batch.target_ids.reshape(-1)[where],
            batch.loss_mask.reshape(-1)[where].float(),
            n_chunks(batch.input_ids.numel(), self.config.vocab_size),
        )

    def loss(self, batch: Batch) -> torch.Tensor:
        """``sum(CE * w) / sum(w)`` over ``batch.loss_positions``, ``w`` the loss mask there.

        The head runs only at the loss positions (Part B is ~20% of a GLM batch), in chunks
        whose count depends on the batch's size only, so the logits never exist whole
        (:mod:`glmlab.model.loss`). With no loss positions the result is a zero that still
        backpropagates.
        """
        rows, head, targets, weight, chunks = self._head_inputs(batch)
        # The clamp only matters for an empty selection (0 / 0); it keeps the grad finite.
        scale = weight / weight.sum().clamp_min(torch.finfo(torch.float32).tiny)
        return linear_cross_entropy(rows, head, targets, scale, chunks=chunks)

    @torch.no_grad()
    def token_losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per loss position (in ``batch.loss_positions`` order): the cross-entropy that
        :meth:`loss` averages, and its loss-mask weight; evaluation scores items with it."""
        losses, weight, _ = self.token_scores(batch)
        return losses, weight

    @torch.no_grad()
    def token_scores(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`token_losses` plus, per loss position, whether the target is the most
        likely token there (what greedy decoding would emit)."""
        rows, head, targets, weight, chunks = self._head_inputs(batch)
        losses, greedy = linear_token_scores(rows, head, targets, chunks=chunks)
        return losses, weight, greedy

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` leaves out the token and positional
        embeddings (a tied head shares the token embedding, so it goes too)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= sum(p.numel() for p in [*self.tok.parameters(), *self.positional.parameters()])
        return n
