"""The model side of a run's assembly: the device, the model config, the attention backend
(chosen before the batch sources exist, so that they get its ``prepare_host``) and the
model."""

from __future__ import annotations

import dataclasses

import torch

from glmlab.config.rules import ConfigError
from glmlab.config.spec import RunSpec
from glmlab.model.attention_select import MeasureOn
from glmlab.model.build import (
    ChosenAttention,
    assemble_model,
    build_positional,
    choose_attention,
)
from glmlab.model.glm import GLMConfig, GLMModel
from glmlab.plugin.base import PositionalSchemeBase
from glmlab.plugin.registry import PluginRegistry, get_registry


def resolve_device(name: str) -> torch.device:
    """``train.device``: ``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"train.device={name} but CUDA is not available here; use train.device=cpu or auto"
        )
    return torch.device(name)


def model_config(spec: RunSpec, vocab_size: int) -> GLMConfig:
    """The Transformer's shape and init: ``spec.model`` (every :class:`ModelConfig` field is
    a :class:`GLMConfig` field) plus the tokenizer's padded ``vocab_size`` and the run's
    ``max_positions``."""
    return GLMConfig(
        vocab_size=vocab_size, max_positions=spec.max_positions, **dataclasses.asdict(spec.model)
    )


def build_run_positional(
    spec: RunSpec, config: GLMConfig, registry: PluginRegistry | None = None
) -> PositionalSchemeBase:
    """The configured positional scheme (its parameters drawn from torch's generator)."""
    name, options = spec.positional
    return build_positional(config, name, options, registry)


def build_run_attention(
    spec: RunSpec,
    config: GLMConfig,
    scheme: PositionalSchemeBase,
    device: torch.device,
    *,
    measure_on: MeasureOn | None = None,
    registry: PluginRegistry | None = None,
) -> ChosenAttention:
    """The configured attention backend for ``scheme`` on ``device``; ``auto`` on CUDA
    with ``measure_on`` is timed on its sample batch (glmlab/model/attention_select.py)."""
    name, options = spec.attention
    return choose_attention(
        config, scheme, name, options, device=device, registry=registry, measure_on=measure_on
    )


def build_run_model(
    spec: RunSpec,
    config: GLMConfig,
    scheme: PositionalSchemeBase,
    attention: ChosenAttention,
    device: torch.device,
    registry: PluginRegistry | None = None,
) -> GLMModel:
    """The model from its built positional scheme and chosen backend, with the configured
    norm layout."""
    norm, norm_options = spec.norm_layout
    return assemble_model(
        config,
        positional=scheme,
        positional_name=spec.positional[0],
        attention=attention,
        norm_layout=norm,
        norm_options=norm_options,
        device=device,
        registry=registry,
    )


def build_glm_model(
    spec: RunSpec,
    vocab_size: int,
    device: torch.device,
    *,
    attention: str | None = None,
    registry: PluginRegistry | None = None,
) -> GLMModel:
    """The run's model on its own (no batches: nothing is timed), e.g. to load weights
    into; ``attention`` overrides the configured backend name (a resolved ``auto``)."""
    registry = registry or get_registry()
    config = model_config(spec, vocab_size)
    scheme = build_run_positional(spec, config, registry)
    name, options = spec.attention
    chosen = choose_attention(
        config, scheme, attention or name, options, device=device, registry=registry
    )
    return build_run_model(spec, config, scheme, chosen, device, registry)


def initial_model(
    spec: RunSpec, vocab_size: int, device: torch.device, *, attention: str | None = None
) -> GLMModel:
    """The weights a run of ``spec`` starts from (seeded by ``spec.seed``), built without
    touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return build_glm_model(spec, vocab_size, device, attention=attention)
