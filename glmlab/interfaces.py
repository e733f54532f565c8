"""The objects that plugin factories return, as protocols. The hookspecs
(:mod:`glmlab.hookspecs`) hand glmlab *factories*; these protocols say what the factories
must build, and :mod:`glmlab.plugin_base` has a base class per kind with every optional
member explicit and defaulted (what plugins derive from; duck-typed plugins get its
defaults when built).

Every factory is called with keyword arguments only: the options from the plugin's config
group (``conf/<kind>/<name>.yaml`` minus ``name``), plus the model settings named below
that its signature declares (:func:`glmlab.registry.factory_arguments`).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from glmlab.structures import AttentionLayout, Segment, SpanSet, TokenizedText


@runtime_checkable
class SpanSampler(Protocol):
    """Chooses the spans to blank out of one text.

    Built as ``factory(**options)``.

    A sampler MAY also define ``for_batch(texts, *, rng) -> SpanSampler`` (what it draws
    once per batch, from every piece of the batch; the ``document`` length) and
    ``sample_row(texts, *, max_len, rng) -> list[SpanSet]`` (one budget over a packed row's
    pieces, fitting ``max_len`` together; the ``sentence`` sampler). The objective calls
    them when they exist (docs/PLUGINS.md).
    """

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        """Return the spans for ``text``.

        Invariants (checked at run time, see :mod:`glmlab.objective`): spans sorted,
        non-overlapping, non-empty, inside ``[0, keep)``; ``keep <= len(text)``;
        ``keep + 2 * len(spans) <= max_len`` (Part A plus Part B fit the row; one less
        with ``eop=False``, which needs exactly one span). All randomness comes from
        ``rng`` so that a seed fixes the result.
        """
        ...


class PositionalScheme(Protocol):
    """An ``nn.Module`` that turns the two position rows into model inputs.

    Built as ``factory(**options)`` plus the settings it declares of ``dim``, ``n_heads``,
    ``head_dim``, ``max_positions``, ``init_std``; it initialises its own parameters.

    A scheme MAY also define ``attention_bias(position_ids) -> Tensor | None``: a float
    additive attention bias (B, H, L, L), or any shape broadcastable to it (e.g.
    (1, H, L, L)), added to the scaled scores before the mask (ALiBi). The model calls it
    once per forward and passes the result to the attention backend, which must declare
    ``supports_bias = True``; :func:`glmlab.model.build.build_model` refuses the pair
    otherwise.
    """

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor | None:
        """Additive embedding (B, L, dim) for ``position_ids`` (B, 2, L), or None."""
        ...

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate queries and keys (B, H, L, D) by position; identity for additive schemes."""
        ...


class NormLayout(Protocol):
    """Where the LayerNorms and residuals sit around each sublayer.

    Built as ``factory(**options)`` plus the settings it declares of ``n_layers``, ``dim``,
    ``eps``.

    A layout MAY also define ``init_projections(projections, kind)``, which owns the init
    of each block's named weight matrices (``q k v out`` for attention, ``ffn_in ffn_out``
    for the MLP; in-place views, called under ``no_grad``; DeepNorm's Xavier gains), and
    ``input_norm(dim) -> nn.Module``, applied to the first block's input (GLM-130B).
    """

    def wrap(self, sublayer: nn.Module, dim: int, kind: Literal["attention", "mlp"]) -> nn.Module:
        """Return a module computing ``x -> residual-block(x)`` around ``sublayer``.

        The returned module's ``forward(x, **kwargs)`` passes ``kwargs`` to ``sublayer``.
        """
        ...

    def final_norm(self, dim: int) -> nn.Module:
        """The norm applied after the last block (``nn.Identity`` where none belongs)."""
        ...


class MaskBuilder(Protocol):
    """Describes the attention structure of a batch. Built as ``factory(**options)``."""

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        """Turn the samples' placement into an :class:`AttentionLayout` (no dense L x L).

        ``segments`` come in any order; the layout lists them row-major. Segments outside
        the batch, empty, with ``sep`` outside ``[0, length]`` or overlapping raise
        ValueError. Runs check every layout (:func:`glmlab.model.build.check_layout`).
        """
        ...


class AttentionBackend(Protocol):
    """Computes masked attention from an :class:`AttentionLayout`.

    Built as ``factory(**options)``.

    A backend MAY also define ``prepare_host(layout) -> dict[str, Any]``: work that depends
    only on the batch's structure (sequence lengths, block offsets, gather indices), done on
    the CPU once per batch by the data collator, in loader workers, off the training loop.
    The result lands in ``layout.host``; its tensors are pinned and reach the device with
    the batch, where ``prepare`` reads them without a host sync. ``prepare`` must still
    work (more slowly) on a layout whose ``host`` lacks them.
    """

    supports_bias: bool
    """Whether ``attend`` accepts a positional scheme's additive ``bias``; a backend that
    does not define it counts as False (the model then never passes ``bias``)."""

    supports_dropout: bool
    """Whether ``attend`` accepts ``dropout_p`` (dropout on the attention probabilities,
    passed only while training with ``model.attention_dropout > 0``); absent counts as False."""

    def is_available(self, device: torch.device) -> bool:
        """Whether this backend can run on ``device`` in this process."""
        ...

    def prepare(self, layout: AttentionLayout) -> Any:
        """Build the per-batch mask once (called once per forward, not per layer)."""
        ...

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: Any,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention output (B, H, L, D) for q, k, v (B, H, L, D), scaled by 1/sqrt(D).

        ``bias`` (float, broadcastable to (B, H, L, L)) is added to the scaled scores; the
        layout's disallowed positions stay disallowed whatever the bias. The model passes
        ``bias`` only when the positional scheme produced one.
        """
        ...
