"""Build a :class:`GLMModel` (and a checked mask builder) from plugin names, through the
registry, in the steps a run's assembly takes one by one (glmlab/assembly/run.py):
:func:`build_positional`, :func:`choose_attention` (which the batch sources need before the
model exists: its ``prepare_host``), :func:`assemble_model`; :func:`build_model` does all
three."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from glmlab.model.attention_select import (
    AttentionSelection,
    MeasureOn,
    measure_auto,
    should_measure,
)
from glmlab.model.glm import GLMConfig, GLMModel, broken, plugin_label, type_and_shape
from glmlab.plugin.base import AttentionBackendBase, MaskBuilderBase, PositionalSchemeBase
from glmlab.plugin.registry import PluginError, PluginRegistry, get_registry
from glmlab.structures import AttentionLayout, Segment

log = logging.getLogger("glmlab")

# ``attention: auto`` on CUDA times its candidates on the run's shape (attention_select.py)
# and takes the fastest; this order breaks ties there, and is the choice (first registered
# and available) when nothing is measured. sdpa first: the fastest GLM-Base training step on
# the H100 (2026-11-27: sdpa 1.05x, flex 0.985x, xformers 0.92x of the causal baseline).
AUTO_CUDA_PREFERENCE = ("sdpa", "flex", "xformers")
AUTO_CPU_BACKEND = "sdpa"


def available_backends(registry: PluginRegistry, device: torch.device) -> list[str]:
    """Names of the registered attention backends that run on ``device`` (default options)."""
    names = []
    for name in registry.names("attention"):
        try:
            backend = registry.create("attention", name)
        except PluginError:  # needs options we cannot guess: not listable as available
            continue
        if backend.is_available(device):
            names.append(name)
    return names


def resolve_attention(
    name: str,
    options: dict[str, Any],
    device: torch.device,
    registry: PluginRegistry,
    needs_bias: bool = False,
    needs_dropout: bool = False,
) -> tuple[str, AttentionBackendBase]:
    """The attention backend ``name`` built with ``options``, checked to run on ``device``.

    ``auto`` picks the first registered, available backend of :data:`AUTO_CUDA_PREFERENCE`
    on CUDA and ``sdpa`` elsewhere, skipping those without ``supports_bias`` when
    ``needs_bias`` (the positional scheme adds an attention bias) and those without
    ``supports_dropout`` when ``needs_dropout`` (``attention_dropout > 0``; then ``sdpa``
    also serves CUDA). Raises ValueError, listing what is available, when the chosen backend
    cannot run on ``device`` or cannot apply attention dropout.
    """
    if name == "auto":
        candidates = AUTO_CUDA_PREFERENCE if device.type == "cuda" else (AUTO_CPU_BACKEND,)
        if needs_dropout and AUTO_CPU_BACKEND not in candidates:
            candidates = (*candidates, AUTO_CPU_BACKEND)
        registered = set(registry.names("attention"))
        for candidate in (c for c in candidates if c in registered):
            backend = registry.create("attention", candidate, **options)
            if (
                backend.is_available(device)
                and (not needs_bias or backend.supports_bias)
                and (not needs_dropout or backend.supports_dropout)
            ):
                return candidate, backend
        raise ValueError(
            f"attention 'auto' found none of {list(candidates)} available on {device}; "
            f"available: {available_backends(registry, device)}"
        )
    backend = registry.create("attention", name, **options)
    if not backend.is_available(device):
        raise ValueError(
            f"attention backend '{name}' is not available on {device}; "
            f"available there: {available_backends(registry, device)}"
        )
    if needs_dropout and not backend.supports_dropout:
        raise ValueError(
            f"attention backend '{name}' applies no attention dropout (it does not set "
            "supports_dropout = True) but model.attention_dropout > 0: set "
            "model.attention_dropout=0 or pick attention=sdpa, eager or auto"
        )
    return name, backend


def positional_settings(config: GLMConfig) -> dict[str, Any]:
    """What a positional factory is offered from the model config."""
    return {
        "dim": config.dim,
        "n_heads": config.n_heads,
        "head_dim": config.head_dim,
        "max_positions": config.max_positions,
        "init_std": config.init_std,
    }


def norm_settings(config: GLMConfig) -> dict[str, Any]:
    """What a norm-layout factory is offered from the model config."""
    return {"n_layers": config.n_layers, "dim": config.dim, "eps": config.norm_eps}


def build_positional(
    config: GLMConfig,
    name: str,
    options: dict[str, Any] | None = None,
    registry: PluginRegistry | None = None,
) -> PositionalSchemeBase:
    """The positional scheme ``name`` with ``options``, offered the model settings
    (:func:`positional_settings`); it initialises its own parameters."""
    registry = registry or get_registry()
    return registry.create(
        "positional", name, settings=positional_settings(config), **(options or {})
    )


def _probe_positions() -> torch.Tensor:
    return torch.stack([torch.arange(4), torch.zeros(4, dtype=torch.long)])[None]  # (1, 2, 4)


@dataclass(frozen=True)
class ChosenAttention:
    """The attention backend a run uses: its registry name (``auto`` resolved), the built
    backend and how it was chosen. The backend's ``prepare_host`` is what the run's batch
    sources run in the collator."""

    name: str
    backend: AttentionBackendBase
    selection: AttentionSelection


def choose_attention(
    config: GLMConfig,
    scheme: PositionalSchemeBase,
    requested: str,
    options: dict[str, Any] | None = None,
    *,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
    measure_on: MeasureOn | None = None,
) -> ChosenAttention:
    """The attention backend ``requested`` (a registry name or ``auto``) for a model of
    ``config`` with positional ``scheme`` on ``device``.

    A scheme that adds an attention bias needs a backend with ``supports_bias``, and
    ``attention_dropout > 0`` one with ``supports_dropout``. With ``measure_on``, ``auto``
    on CUDA times the candidate backends on its sample batch and takes the fastest
    (:mod:`glmlab.model.attention_select`); otherwise :func:`resolve_attention` decides.
    """
    registry = registry or get_registry()
    device = torch.device(device)
    options = options or {}
    make_bias = scheme.attention_bias
    with torch.no_grad():
        needs_bias = make_bias(_probe_positions()) is not None
    needs_dropout = config.attention_dropout > 0
    if should_measure(requested, device, measure_on):
        selection = measure_auto(
            registry,
            options,
            device,
            n_heads=config.n_heads,
            head_dim=config.head_dim,
            make_bias=make_bias,
            needs_bias=needs_bias,
            measure_on=measure_on,
            preference=AUTO_CUDA_PREFERENCE,
            needs_dropout=needs_dropout,
        )
        name = selection.backend
        backend = registry.create("attention", name, **options)
    else:
        name, backend = resolve_attention(
            requested, options, device, registry, needs_bias, needs_dropout=needs_dropout
        )
        method = "default" if requested == "auto" else "explicit"
        selection = AttentionSelection(name, method, requested)
    log.info("attention backend: %s (requested %r) on %s", name, requested, device)
    return ChosenAttention(name, backend, selection)


def assemble_model(
    config: GLMConfig,
    *,
    positional: PositionalSchemeBase,
    positional_name: str,
    attention: ChosenAttention,
    norm_layout: str,
    norm_options: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
) -> GLMModel:
    """A :class:`GLMModel` on ``device`` from a built positional scheme (registered as
    ``positional_name``), a chosen attention backend and the norm layout ``norm_layout``
    (offered ``n_layers``, ``dim`` and ``eps``: :func:`norm_settings`). Refuses a scheme
    whose attention bias the backend cannot take, naming both plugins."""
    registry = registry or get_registry()
    model = GLMModel(
        config,
        positional=positional,
        norm_layout=registry.create(
            "norm_layout", norm_layout, settings=norm_settings(config), **(norm_options or {})
        ),
        attention=attention.backend,
        labels={
            kind: plugin_label(registry.get(kind, name))
            for kind, name in [
                ("positional", positional_name),
                ("norm_layout", norm_layout),
                ("attention", attention.name),
            ]
        },
    )
    model.attention_name = attention.name
    model.attention_selection = attention.selection
    # Checks the bias and refuses a backend that cannot take it (naming both plugins) here,
    # not at the first training step.
    with torch.no_grad():
        model.attention_bias(_probe_positions())
    return model.to(torch.device(device))


def build_model(
    config: GLMConfig,
    *,
    positional: str,
    positional_options: dict[str, Any] | None = None,
    norm_layout: str,
    norm_options: dict[str, Any] | None = None,
    attention: str,
    attention_options: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
    measure_on: MeasureOn | None = None,
) -> GLMModel:
    """A :class:`GLMModel` on ``device`` from the named plugins (GLM's own are
    ``learned_2d`` and ``pre_ln``; the config's choices come from conf/config.yaml):
    :func:`build_positional`, :func:`choose_attention`, :func:`assemble_model` in turn.

    Each factory receives the model settings its signature declares
    (:func:`glmlab.plugin.registry.factory_arguments`), plus its options. ``model.attention_name``
    is the resolved backend name (``auto`` resolved); ``model.attention_selection`` says
    what was chosen and how.
    """
    registry = registry or get_registry()
    scheme = build_positional(config, positional, positional_options, registry)
    chosen = choose_attention(
        config,
        scheme,
        attention,
        attention_options,
        device=device,
        registry=registry,
        measure_on=measure_on,
    )
    return assemble_model(
        config,
        positional=scheme,
        positional_name=positional,
        attention=chosen,
        norm_layout=norm_layout,
        norm_options=norm_options,
        device=device,
        registry=registry,
    )


def check_layout(
    layout: AttentionLayout, segments: list[Segment], batch_size: int, seq_len: int, plugin: str
) -> None:
    """Raise :class:`~glmlab.model.glm.PluginContractError` naming ``plugin`` unless
    ``layout`` describes ``segments`` the way :class:`AttentionLayout` says.

    Checks the sizes, the (B, L) int32 ``segment_ids`` / ``prefix_end``, one row-major entry
    per segment with its row, start and length and a prefix in ``[0, length]``, and that the
    per-column fields agree with those entries. Which keys a query sees is the conformance
    kit's job (:mod:`glmlab.testing`), not a run's.
    """
    if not isinstance(layout, AttentionLayout):
        raise broken(plugin, f"build() returned {type_and_shape(layout)}, not an AttentionLayout")
    if (layout.batch_size, layout.seq_len) != (batch_size, seq_len):
        raise broken(
            plugin,
            f"layout size (batch_size, seq_len) = {(layout.batch_size, layout.seq_len)} for a "
            f"batch of {(batch_size, seq_len)}",
        )
    for field in ("segment_ids", "prefix_end"):
        t = getattr(layout, field)
        if not (
            isinstance(t, torch.Tensor)
            and t.shape == (batch_size, seq_len)
            and t.dtype == torch.int32
        ):
            raise broken(
                plugin,
                f"layout.{field} is {type_and_shape(t)}; expected an int32 tensor (B, L) = "
                f"{(batch_size, seq_len)}",
            )
    n = len(segments)
    try:
        entries = np.array(layout.segments, dtype=np.int64).reshape(-1, 4)
    except (TypeError, ValueError):  # ragged or non-numeric entries
        entries = np.zeros((0, 0), dtype=np.int64)
    given = np.array([(s.row, s.start, s.length) for s in segments], dtype=np.int64).reshape(-1, 3)
    given = given[np.lexsort((given[:, 1], given[:, 0]))]  # row-major
    if entries.shape != (n, 4) or not np.array_equal(entries[:, :3], given):
        raise broken(
            plugin,
            f"layout.segments (first entries {layout.segments[:3]}) does not list the {n} "
            "segments row-major as (row, start, length, prefix), one entry each",
        )
    rows, starts, lengths, prefix = entries.T
    if ((prefix < 0) | (prefix > lengths)).any():
        raise broken(plugin, "layout.segments has a prefix outside [0, length]")
    # The per-column fields these entries imply, run-length decoded (segments are sorted).
    first = np.cumsum(lengths) - lengths
    columns = np.repeat(rows * seq_len + starts - first, lengths) + np.arange(lengths.sum())
    expected = np.full(batch_size * seq_len, -1, dtype=np.int64)
    expected[columns] = np.repeat(np.arange(n), lengths)
    if not np.array_equal(layout.segment_ids.cpu().numpy().reshape(-1), expected):
        raise broken(plugin, "layout.segment_ids does not match layout.segments (-1 on padding)")
    prefix_end = layout.prefix_end.cpu().numpy().reshape(-1)[columns]
    if not np.array_equal(prefix_end, np.repeat(starts + prefix, lengths)):
        raise broken(plugin, "layout.prefix_end is not start + prefix on every segment column")


class CheckedMaskBuilder:
    """A mask builder whose every layout goes through :func:`check_layout`.

    The check runs where the layout is built: in the data pipeline, on the CPU, off the
    model's forward path.
    """

    def __init__(self, builder: MaskBuilderBase, plugin: str) -> None:
        self.builder = builder
        self.plugin = plugin

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        layout = self.builder.build(segments, batch_size=batch_size, seq_len=seq_len)
        check_layout(layout, segments, batch_size, seq_len, self.plugin)
        return layout


def checked_mask_builder(
    name: str, options: dict[str, Any] | None = None, registry: PluginRegistry | None = None
) -> CheckedMaskBuilder:
    """The mask builder ``name`` built with ``options``, its layouts checked at run time."""
    registry = registry or get_registry()
    builder = registry.create("mask_builder", name, **(options or {}))
    return CheckedMaskBuilder(builder, plugin_label(registry.get("mask_builder", name)))
