"""The model side of a run's assembly: the device, the model config and the model on its
own (:func:`build_glm_model`, :func:`initial_model`). The builders take the config's plugin
choices directly (:mod:`glmlab.model.build`); the run's pass (:mod:`glmlab.assembly.run`)
calls them in turn, choosing the attention backend before the batch sources exist so that
they get its ``prepare_host``."""

from __future__ import annotations

import dataclasses

import torch

from glmlab.assembly.seeds import stream_seed
from glmlab.config.rules import ConfigError
from glmlab.config.spec import RunSpec
from glmlab.model.build import (
    assemble_model,
    build_positional,
    choose_attention,
)
from glmlab.model.glm import GLMConfig, GLMModel
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
    scheme = build_positional(config, spec.positional, registry)
    choice = spec.attention._replace(name=attention) if attention else spec.attention
    chosen = choose_attention(config, scheme, choice, device=device, registry=registry)
    return assemble_model(
        config,
        positional=scheme,
        positional_name=spec.positional.name,
        attention=chosen,
        norm_layout=spec.norm_layout,
        device=device,
        registry=registry,
    )


def initial_model(
    spec: RunSpec, vocab_size: int, device: torch.device, *, attention: str | None = None
) -> GLMModel:
    """The weights a run of ``spec`` starts from (seeded by ``spec.seed`` on its ``train.stream``), built without
    touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(spec))
        return build_glm_model(spec, vocab_size, device, attention=attention)
