"""The model side of a run's assembly: the device, the model config and the run's model
(:func:`build_glm_model`, :func:`initial_model`): a :class:`~glmlab.config.spec.RunSpec`'s
choices handed to the one model builder, :func:`glmlab.model.build.build_model`. The run's
pass (:mod:`glmlab.assembly.run`) builds the model before the batch sources, so that they
get its attention backend's ``prepare_host``."""

from __future__ import annotations

import dataclasses

import torch

from glmlab.assembly.seeds import stream_seed
from glmlab.config.rules import ConfigError
from glmlab.config.spec import RunSpec
from glmlab.model.attention_select import MeasureOn
from glmlab.model.build import build_model
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
    measure_on: MeasureOn | None = None,
) -> GLMModel:
    """The model of a run of ``spec`` (:func:`glmlab.model.build.build_model` with the
    spec's plugin choices). ``attention`` overrides the configured backend name (a resolved
    ``auto``); ``measure_on`` lets ``auto`` on CUDA time the candidates on a sample batch."""
    choice = spec.attention._replace(name=attention) if attention else spec.attention
    return build_model(
        model_config(spec, vocab_size),
        positional=spec.positional,
        norm_layout=spec.norm_layout,
        attention=choice,
        device=device,
        registry=registry or get_registry(),
        measure_on=measure_on,
    )


def initial_model(
    spec: RunSpec, vocab_size: int, device: torch.device, *, attention: str | None = None
) -> GLMModel:
    """The weights a run of ``spec`` starts from (seeded by ``spec.seed`` on its ``train.stream``), built without
    touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(spec))
        return build_glm_model(spec, vocab_size, device, attention=attention)
