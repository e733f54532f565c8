"""Build a :class:`GLMModel` (and a checked mask builder) from plugin names, through the
registry, in the steps a run's assembly takes one by one (glmlab/assembly/run.py):
:func:`build_positional`, :func:`choose_attention` (which the batch sources need before the
model exists: its ``prepare_host``), :func:`assemble_model`; :func:`build_model` does all
three."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from glmlab.config.spec import PluginChoice
from glmlab.model.attention_candidates import (
    AUTO_CPU_BACKEND,
    AUTO_CUDA_PREFERENCE,
    AttentionRequest,
    backend_candidates,
)
from glmlab.model.attention_select import (
    AttentionSelection,
    MeasureOn,
    measure_auto,
    should_measure,
)
from glmlab.model.glm import GLMConfig, GLMModel
from glmlab.plugin.base import AttentionBackendBase, PositionalSchemeBase
from glmlab.plugin.guards import plugin_label
from glmlab.plugin.registry import PluginRegistry, get_registry

log = logging.getLogger("glmlab")


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
            f"available: {backend_candidates(registry, device)[0]}"
        )
    backend = registry.create("attention", name, **options)
    if not backend.is_available(device):
        raise ValueError(
            f"attention backend '{name}' is not available on {device}; "
            f"available there: {backend_candidates(registry, device)[0]}"
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
    config: GLMConfig, choice: PluginChoice, registry: PluginRegistry | None = None
) -> PositionalSchemeBase:
    """The positional scheme ``choice`` (the config's ``positional``: name and options),
    offered the model settings (:func:`positional_settings`); it initialises its own
    parameters."""
    registry = registry or get_registry()
    return registry.create(
        "positional", choice.name, settings=positional_settings(config), **choice.options
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
    choice: PluginChoice,
    *,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
    measure_on: MeasureOn | None = None,
) -> ChosenAttention:
    """The attention backend ``choice`` (the config's ``attention``: a registry name or
    ``auto``, and options) for a model of ``config`` with positional ``scheme`` on
    ``device``.

    A scheme that adds an attention bias needs a backend with ``supports_bias``, and
    ``attention_dropout > 0`` one with ``supports_dropout``. With ``measure_on``, ``auto``
    on CUDA times the candidate backends on its sample batch and takes the fastest
    (:mod:`glmlab.model.attention_select`); otherwise :func:`resolve_attention` decides.
    """
    registry = registry or get_registry()
    device = torch.device(device)
    requested, options = choice.name, dict(choice.options)
    make_bias = scheme.attention_bias
    with torch.no_grad():
        needs_bias = make_bias(_probe_positions()) is not None
    needs_dropout = config.attention_dropout > 0
    if should_measure(requested, device, measure_on):
        request = AttentionRequest(
            registry,
            device,
            options,
            n_heads=config.n_heads,
            head_dim=config.head_dim,
            make_bias=make_bias,
            needs_bias=needs_bias,
            needs_dropout=needs_dropout,
        )
        selection = measure_auto(request, measure_on)
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
    norm_layout: PluginChoice,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
) -> GLMModel:
    """A :class:`GLMModel` on ``device`` from a built positional scheme (registered as
    ``positional_name``), a chosen attention backend and the norm layout ``norm_layout``
    (the config's choice: name and options; offered ``n_layers``, ``dim`` and ``eps``: :func:`norm_settings`). Refuses a scheme
    whose attention bias the backend cannot take, naming both plugins."""
    registry = registry or get_registry()
    model = GLMModel(
        config,
        positional=positional,
        norm_layout=registry.create(
            "norm_layout", norm_layout.name, settings=norm_settings(config), **norm_layout.options
        ),
        attention=attention.backend,
        labels={
            kind: plugin_label(registry.get(kind, name))
            for kind, name in [
                ("positional", positional_name),
                ("norm_layout", norm_layout.name),
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
    scheme = build_positional(config, PluginChoice(positional, positional_options or {}), registry)
    chosen = choose_attention(
        config,
        scheme,
        PluginChoice(attention, attention_options or {}),
        device=device,
        registry=registry,
        measure_on=measure_on,
    )
    return assemble_model(
        config,
        positional=scheme,
        positional_name=positional,
        attention=chosen,
        norm_layout=PluginChoice(norm_layout, norm_options or {}),
        device=device,
        registry=registry,
    )
