"""Build a :class:`GLMModel` from plugin names, through the registry."""

from __future__ import annotations

import logging
from typing import Any

import torch

from glmlab.interfaces import AttentionBackend
from glmlab.model.glm import GLMConfig, GLMModel
from glmlab.registry import PluginError, PluginRegistry, get_registry

log = logging.getLogger("glmlab")

# ``attention: auto`` on CUDA takes the first of these that is registered and runs there.
AUTO_CUDA_PREFERENCE = ("xformers", "flex", "sdpa")
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
    name: str, options: dict[str, Any], device: torch.device, registry: PluginRegistry
) -> tuple[str, AttentionBackend]:
    """The attention backend ``name`` built with ``options``, checked to run on ``device``.

    ``auto`` picks the first registered, available backend of :data:`AUTO_CUDA_PREFERENCE`
    on CUDA and ``sdpa`` elsewhere. Raises ValueError, listing what is available, when the
    chosen backend cannot run on ``device``.
    """
    if name == "auto":
        candidates = AUTO_CUDA_PREFERENCE if device.type == "cuda" else (AUTO_CPU_BACKEND,)
        registered = set(registry.names("attention"))
        for candidate in (c for c in candidates if c in registered):
            backend = registry.create("attention", candidate, **options)
            if backend.is_available(device):
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
    return name, backend


def build_model(
    config: GLMConfig,
    *,
    positional: str = "learned_2d",
    positional_options: dict[str, Any] | None = None,
    norm_layout: str = "pre_ln",
    norm_options: dict[str, Any] | None = None,
    attention: str = "auto",
    attention_options: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    registry: PluginRegistry | None = None,
) -> GLMModel:
    """A :class:`GLMModel` on ``device`` from the named plugins (GLM's choices by default).

    The positional factory gets ``dim``, ``n_heads``, ``head_dim``, ``max_positions``; the
    norm layout gets ``n_layers``; each plus its options. ``model.attention_name`` is the
    resolved backend name (``auto`` resolved).
    """
    registry = registry or get_registry()
    device = torch.device(device)
    attention_name, backend = resolve_attention(
        attention, attention_options or {}, device, registry
    )
    log.info("attention backend: %s (requested %r) on %s", attention_name, attention, device)
    model = GLMModel(
        config,
        positional=registry.create(
            "positional",
            positional,
            dim=config.dim,
            n_heads=config.n_heads,
            head_dim=config.head_dim,
            max_positions=config.max_positions,
            **(positional_options or {}),
        ),
        norm_layout=registry.create(
            "norm_layout", norm_layout, n_layers=config.n_layers, **(norm_options or {})
        ),
        attention=backend,
    )
    model.attention_name = attention_name
    return model.to(device)
