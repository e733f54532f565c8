"""Which attention backends a run may use: :func:`backend_candidates`, the one answer to
"what can run here" (the backends listed as available in an error message, and the
candidates ``auto`` times), and :class:`AttentionRequest`, what a run asks of its backend
(device, options, shape, bias and dropout), passed whole to the ``auto`` selection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from glmlab.plugin.registry import PluginError, PluginRegistry

log = logging.getLogger("glmlab")

__all__ = [
    "AUTO_CPU_BACKEND",
    "AUTO_CUDA_PREFERENCE",
    "NOT_TIMED",
    "AttentionRequest",
    "backend_candidates",
]

# ``attention: auto`` on CUDA times its candidates on the run's shape (attention_select.py)
# and takes the fastest; this order breaks ties there, and is the choice (first registered
# and available) when nothing is measured. sdpa first: the fastest GLM-Base training step on
# the H100 (2026-11-27: sdpa 1.05x, flex 0.985x, xformers 0.92x of the causal baseline).
AUTO_CUDA_PREFERENCE = ("sdpa", "flex", "xformers")
AUTO_CPU_BACKEND = "sdpa"
# Registered backends ``auto`` never times, with the reason logged and recorded.
NOT_TIMED = {"eager": "the fp32 reference; never a training choice"}


@dataclass(frozen=True)
class AttentionRequest:
    """What a run asks of its attention backend: built with ``options`` from ``registry``,
    run on ``device`` for ``n_heads`` heads of ``head_dim``; ``needs_bias`` when the
    positional scheme adds an attention bias (``make_bias`` builds it from position ids),
    ``needs_dropout`` when ``model.attention_dropout > 0``; ``preference`` breaks ties."""

    registry: PluginRegistry
    device: torch.device
    options: Mapping[str, Any] = field(default_factory=dict)
    n_heads: int = 1
    head_dim: int = 1
    make_bias: Callable[[torch.Tensor], torch.Tensor | None] | None = None
    needs_bias: bool = False
    needs_dropout: bool = False
    preference: Sequence[str] = AUTO_CUDA_PREFERENCE


def backend_candidates(
    registry: PluginRegistry,
    device: torch.device,
    *,
    options: Mapping[str, Any] | None = None,
    needs_bias: bool = False,
    needs_dropout: bool = False,
    timed: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The registered attention backends that can run on ``device`` (built with
    ``options``; taking a bias when ``needs_bias``, applying dropout when
    ``needs_dropout``), and every other one with the reason. ``timed``: the candidates
    ``auto`` times, which leave out :data:`NOT_TIMED` too."""
    options = dict(options or {})
    names: list[str] = []
    left_out: dict[str, str] = {}
    for name in registry.names("attention"):
        if timed and name in NOT_TIMED:
            left_out[name] = NOT_TIMED[name]
            continue
        try:
            backend = registry.create("attention", name, **options)
        except PluginError as e:
            left_out[name] = f"cannot be built with options {options}: {e}"
            continue
        try:
            available = backend.is_available(device)
        except Exception as e:  # a third-party backend's check must not stop the run
            available = False
            log.warning("attention: '%s'.is_available raised %s; skipped", name, e)
        if not available:
            left_out[name] = f"not available on {device}"
        elif needs_bias and not backend.supports_bias:
            left_out[name] = "takes no attention bias (the positional scheme adds one)"
        elif needs_dropout and not backend.supports_dropout:
            left_out[name] = "applies no attention dropout (model.attention_dropout > 0)"
        else:
            names.append(name)
    return names, left_out
