"""The one model builder: :func:`build_model`, a :class:`GLMModel` from the config's plugin
choices, looked up in the registry. A run's assembly (:func:`glmlab.assembly.build_glm_model`,
which hands it a :class:`~glmlab.config.spec.RunSpec`'s choices), ``glmlab infill``, the
benchmarks, the tests and plugin packages' tests all build models through it.

The steps, in order: the positional scheme (offered :func:`positional_settings`; it
initialises its own parameters), the attention backend (``auto`` resolved, or timed on CUDA
on ``measure_on``'s sample; it must take the scheme's bias), the norm layout (offered
:func:`norm_settings`), then the model. The chosen backend is ``model.attention``: its
``prepare_host`` is what a run's batch sources run in the collator, so a run builds its
model before its batch sources."""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
from glmlab.plugin.base import (
    AttentionBackendBase,
    NormLayoutBase,
    PositionalSchemeBase,
    check_base,
)
from glmlab.plugin.guards import plugin_label
from glmlab.plugin.registry import PluginRegistry, get_registry

__all__ = ["build_model", "norm_settings", "positional_settings", "resolve_attention"]

Choice = str | PluginChoice
"""A plugin choice: a registry name, or a name with the factory's options."""

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


def _probe_positions() -> torch.Tensor:
    return torch.stack([torch.arange(4), torch.zeros(4, dtype=torch.long)])[None]  # (1, 2, 4)


def _choice(choice: Choice) -> PluginChoice:
    return choice if isinstance(choice, PluginChoice) else PluginChoice(str(choice), {})


def _plugin(
    kind: str,
    choice: Choice | Any,
    settings: dict[str, Any],
    registry: PluginRegistry,
    labels: dict[str, str],
) -> Any:
    """The plugin of ``kind`` that ``choice`` names, built by the registry (offered
    ``settings``; its guard label recorded in ``labels``), or ``choice`` itself when it is
    a plugin already built (named by its class)."""
    if not isinstance(choice, str | PluginChoice):
        check_base(kind, choice, labels.get(kind, f"{kind} plugin {type(choice).__qualname__}"))
        return choice
    chosen = _choice(choice)
    built = registry.create(kind, chosen.name, settings=settings, **chosen.options)
    labels[kind] = plugin_label(registry.get(kind, chosen.name))
    return built


def _attention(
    config: GLMConfig,
    scheme: PositionalSchemeBase,
    choice: PluginChoice,
    device: torch.device,
    registry: PluginRegistry,
    measure_on: MeasureOn | None,
) -> tuple[str, AttentionBackendBase, AttentionSelection]:
    """The attention backend ``choice`` for a model of ``config`` with ``scheme`` on
    ``device``: timed on ``measure_on`` (``auto`` on CUDA), else :func:`resolve_attention`."""
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
    return name, backend, selection


def build_model(
    config: GLMConfig,
    *,
    positional: Choice | PositionalSchemeBase,
    norm_layout: Choice | NormLayoutBase,
    attention: Choice,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
    measure_on: MeasureOn | None = None,
    labels: Mapping[str, str] | None = None,
) -> GLMModel:
    """A :class:`GLMModel` of ``config`` on ``device`` with the plugins chosen by registry
    name or by :class:`~glmlab.config.spec.PluginChoice` (name and factory options):
    ``build_model(config, positional="alibi", norm_layout="pre_ln", attention="auto")``.
    A positional scheme or norm layout already built (the conformance kit's plugin under
    test) is used as it is, named in guard messages by ``labels[kind]`` (else its class).

    Each factory receives its options plus the model settings its signature declares
    (:func:`glmlab.plugin.registry.factory_arguments`). ``attention`` may be ``auto``: with
    ``measure_on`` it is timed on CUDA (:mod:`glmlab.model.attention_select`), otherwise
    :func:`resolve_attention` decides; a scheme that adds an attention bias needs a backend
    with ``supports_bias`` and ``attention_dropout > 0`` one with ``supports_dropout``.
    Refuses a scheme whose bias the backend cannot take, naming both plugins. The built
    model's ``attention_name`` is the backend that runs (``auto`` resolved) and
    ``attention_selection`` how it was chosen.
    """
    registry = registry or get_registry()
    device = torch.device(device)
    labels = dict(labels or {})
    scheme = _plugin("positional", positional, positional_settings(config), registry, labels)
    name, backend, selection = _attention(
        config, scheme, _choice(attention), device, registry, measure_on
    )
    labels["attention"] = plugin_label(registry.get("attention", name))
    layout = _plugin("norm_layout", norm_layout, norm_settings(config), registry, labels)
    model = GLMModel(
        config, positional=scheme, norm_layout=layout, attention=backend, labels=labels
    )
    model.attention_name = name
    model.attention_selection = selection
    # Checks the bias and refuses a backend that cannot take it (naming both plugins) here,
    # not at the first training step.
    with torch.no_grad():
        model.attention_bias(_probe_positions())
    return model.to(device)
