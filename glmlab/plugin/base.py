"""One base class per plugin kind, every optional member explicit and defaulted: the one
source of what a plugin factory builds.

Every factory is called with keyword arguments only: the options from the plugin's config
group (``conf/<kind>/<name>.yaml`` minus ``name``), plus the model settings its signature
declares (:func:`glmlab.plugin.registry.factory_arguments`): positional schemes ``dim``,
``n_heads``, ``head_dim``, ``max_positions``, ``init_std``; norm layouts ``n_layers``,
``dim``, ``eps``.

A plugin derives from its kind's base and overrides what it needs; the core then calls
every member directly, so no code looks members up with ``getattr``. What a factory builds
is checked to derive from its kind's base when it is built
(:func:`check_base`; a duck-typed plugin is refused, naming the base).

- :class:`SpanSamplerBase`: ``sample`` (required); ``mask_kind``, ``for_batch``,
  ``sample_row``.
- :class:`PositionalSchemeBase` (an ``nn.Module``): ``embed``, ``rotate``,
  ``attention_bias``; it initialises its own parameters (the model never touches them).
- :class:`NormLayoutBase`: ``wrap`` (required), ``final_norm``, ``init_projections``,
  ``input_norm``.
- :class:`MaskBuilderBase`: ``build`` (required).
- :class:`AttentionBackendBase`: ``prepare`` and ``attend`` (required); ``supports_bias``,
  ``supports_dropout``, ``is_available``, ``prepare_host``.
- :class:`TrackerBase` (a protocol): ``start``, ``log``, ``finish`` (all required), given a
  :class:`TrackerRun`; a factory raises :class:`TrackerUnavailable` when its library is
  missing. The fan-out to a run's trackers is :mod:`glmlab.runs.trackers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from glmlab.io import flatten
from glmlab.plugin.errors import PluginContractError, PluginError
from glmlab.structures import AttentionLayout, MaskKind, Segment, SpanSet, TokenizedText

SublayerKind = Literal["attention", "mlp"]


class SpanSamplerBase:
    """Chooses the spans to blank out of one text."""

    mask_kind: MaskKind = "MASK"
    """The mask token this sampler's spans use; what the eval suite reads as the kind the
    model was trained on. Set it per instance when an option picks it."""

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        """The spans for ``text``.

        Invariants (checked at run time, :func:`glmlab.plugin.guards.check_span_set`): spans
        sorted, non-overlapping, non-empty, inside ``[0, keep)``; ``keep <= len(text)``;
        ``keep + 2 * len(spans) <= max_len`` (Part A plus Part B fit the row; one less with
        ``eop=False``, which needs exactly one span). All randomness comes from ``rng``.
        """
        raise NotImplementedError(f"{type(self).__name__} must define sample()")

    def for_batch(
        self, texts: Sequence[TokenizedText], *, rng: np.random.Generator
    ) -> SpanSamplerBase:
        """The sampler for one batch of ``texts``: what it draws once per batch (default:
        nothing; itself). Draws only from ``rng``."""
        return self

    def sample_row(
        self, texts: Sequence[TokenizedText], *, max_len: int, rng: np.random.Generator
    ) -> list[SpanSet] | None:
        """Span sets for the pieces of one packed row under one ``max_len`` budget, or None
        (the default) to have each piece sampled with :meth:`sample`. Returning None must
        draw nothing from ``rng``."""
        return None


class PositionalSchemeBase(nn.Module):
    """Turns the two position rows (B, 2, L) into model inputs; no embedding, no rotation
    and no bias by default.

    The scheme owns its parameters: it initialises them in ``__init__`` (its factory may
    declare ``init_std``, the model's init scale) and the model never re-initialises them,
    so a frozen or fixed table (``nn.Embedding.from_pretrained(table, freeze=True)``)
    survives.
    """

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor | None:
        """An additive embedding (B, L, dim), or None."""
        return None

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys (B, H, L, D) rotated by position; unchanged by default."""
        return q, k

    def attention_bias(self, position_ids: torch.Tensor) -> torch.Tensor | None:
        """A float additive bias broadcastable to (B, H, L, L), or None (the default). A
        bias needs an attention backend with ``supports_bias = True``."""
        return None


class NormLayoutBase:
    """Where the norms and residuals sit around each sublayer."""

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        """A module computing ``x -> residual-block(x)`` around ``sublayer``; its
        ``forward(x, **kwargs)`` passes ``kwargs`` on to ``sublayer``."""
        raise NotImplementedError(f"{type(self).__name__} must define wrap()")

    def final_norm(self, dim: int) -> nn.Module:
        """The norm after the last block; ``nn.Identity()`` by default."""
        return nn.Identity()

    def init_projections(self, projections: Mapping[str, torch.Tensor], kind: SublayerKind) -> None:
        """Re-initialise a block's weight matrices (``q k v out`` / ``ffn_in ffn_out``), in
        place, under ``no_grad``; by default keep the model's N(0, init_std) init."""

    def input_norm(self, dim: int) -> nn.Module | None:
        """A norm on the first block's input (GLM-130B), or None (the default): none."""
        return None


class MaskBuilderBase:
    """Describes the attention structure of a batch."""

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        """The :class:`~glmlab.structures.AttentionLayout` of ``segments`` (no dense L x L).

        ``segments`` come in any order; the layout lists them row-major. Segments outside
        the batch, empty, with ``sep`` outside ``[0, length]`` or overlapping raise
        ValueError. Runs check every layout (:func:`glmlab.plugin.guards.check_layout`).
        """
        raise NotImplementedError(f"{type(self).__name__} must define build()")


class AttentionBackendBase:
    """Computes masked attention from an :class:`~glmlab.structures.AttentionLayout`."""

    supports_bias: ClassVar[bool] = False
    """Whether ``attend`` takes a positional scheme's additive ``bias``."""
    supports_dropout: ClassVar[bool] = False
    """Whether ``attend`` takes ``dropout_p`` (attention-probability dropout)."""

    def is_available(self, device: torch.device) -> bool:
        """Whether it runs on ``device`` in this process; True by default."""
        return True

    def prepare_host(self, layout: AttentionLayout) -> dict[str, Any]:
        """Work that depends only on the batch's structure (sequence lengths, block offsets,
        gather indices), done on the CPU once per batch by the data collator, in loader
        workers. The result lands in ``layout.host_prepared``; its tensors are pinned and
        reach the device with the batch, where ``prepare`` reads them without a host sync.
        ``prepare`` must still work (more slowly) without them. Nothing by default."""
        return {}

    def prepare(self, layout: AttentionLayout) -> Any:
        """The per-batch mask, built once per forward."""
        raise NotImplementedError(f"{type(self).__name__} must define prepare()")

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: Any,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention output (B, H, L, D) for q, k, v (B, H, L, D), scores scaled by 1/sqrt(D).

        ``bias`` (float, broadcastable to (B, H, L, L); passed only when the positional
        scheme made one) is added to the scaled scores; the layout's disallowed positions
        stay disallowed whatever the bias."""
        raise NotImplementedError(f"{type(self).__name__} must define attend()")


class TrackerUnavailable(PluginError):
    """A selected tracker cannot run here (its library is missing); the message says what
    to install."""


@dataclass(frozen=True)
class TrackerRun:
    """What a tracker needs to open (or continue) its run for one glmlab run.

    ``experiment`` is the sweep's name (its directory's), ``name`` the run directory's,
    ``variant`` the overrides of the keys the sweep varies (``"positional=rope"``; empty for
    a single run), ``config`` the resolved config (nested), ``resume_id`` the id this tracker
    returned for an earlier attempt of the run (None the first time), ``start_step`` the
    step the run (re)starts from.
    """

    run_dir: Path
    experiment: str
    name: str
    variant: str
    config: Mapping[str, Any]
    resume_id: str | None = None
    start_step: int = 0

    @property
    def sweep_dir(self) -> Path:
        return self.run_dir.parent

    def flat_config(self) -> dict[str, Any]:
        """The config as ``{"model.dim": 32, ...}`` (lists as JSON text)."""
        return flatten(self.config, encode=True)


@runtime_checkable
class TrackerBase(Protocol):
    """One tracker's side of a run, built as ``factory(**options)``: all three members are
    required (a tracker has no optional member, so no defaults to give; ``isinstance``
    checks a built tracker has them)."""

    def start(self, run: TrackerRun) -> str:
        """Open the tracker run, or continue ``run.resume_id``; return its id (a string that
        :meth:`start` accepts as ``resume_id`` when the run resumes)."""
        ...

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` (``train/loss``, ``val/loss``, ``eval/cloze_acc``, ...) at ``step``."""
        ...

    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        """Close the run: ``status`` is a ``glmlab.runs.layout.RunStatus`` value (``stopped``:
        it will resume), ``summary`` the final metrics."""
        ...


BASES: dict[str, type] = {
    "span_sampler": SpanSamplerBase,
    "positional": PositionalSchemeBase,
    "norm_layout": NormLayoutBase,
    "mask_builder": MaskBuilderBase,
    "attention": AttentionBackendBase,
}
"""Plugin kind -> the base class its plugins derive from (:func:`check_base`). A kind not
listed here (``tracker``, a protocol) is used as built."""


def check_base(kind: str, plugin: object, label: str) -> None:
    """What a factory of ``kind`` built derives from the kind's base class (:data:`BASES`;
    a kind without one passes): the core calls every member of the base directly. Raises
    :class:`~glmlab.plugin.errors.PluginContractError` naming ``label`` and the base."""
    base = BASES.get(kind)
    if base is not None and not isinstance(plugin, base):
        raise PluginContractError(
            f"{label} broke an invariant: it built a {type(plugin).__qualname__}, which does "
            f"not derive from glmlab.plugin.base.{base.__name__}: derive from it (glmlab "
            "0.2.0 removed the adaptation of duck-typed plugins; docs/PLUGINS.md)"
        )
