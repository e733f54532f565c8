"""Assembly: turn a composed Hydra config into the run's parts, asking the registry for
every plugin by name. Nothing here imports a built-in plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from glmlab.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    TrainConfig,
    plugin_choice,
    to_dataclass,
)
from glmlab.model.build import checked_mask_builder
from glmlab.objective import CLMObjective, GLMObjective, MLMObjective, Objective
from glmlab.registry import PluginRegistry, get_registry
from glmlab.rundir import KEEP_CHECKPOINT
from glmlab.structures import SpecialTokens


@dataclass
class RunSpec:
    """The typed config of one run."""

    seed: int
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    objective: ObjectiveConfig
    positional: tuple[str, dict[str, Any]]
    norm_layout: tuple[str, dict[str, Any]]
    mask_builder: tuple[str, dict[str, Any]]
    attention: tuple[str, dict[str, Any]]

    @property
    def max_positions(self) -> int:
        return self.data.seq_len


def parse_config(cfg: DictConfig) -> RunSpec:
    """Validate the composed config into a :class:`RunSpec`: unknown keys, and values of
    the wrong type or out of range (the rules on the dataclasses of glmlab/config.py), are
    one :class:`ConfigError` before anything is loaded."""
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed={seed}: must be an integer")
    spec = RunSpec(
        seed=seed,
        model=to_dataclass(ModelConfig, cfg.model, "model"),
        data=to_dataclass(DataConfig, cfg.data, "data"),
        train=to_dataclass(TrainConfig, cfg.train, "train"),
        objective=to_dataclass(ObjectiveConfig, cfg.objective, "objective"),
        positional=plugin_choice(cfg.positional, "positional"),
        norm_layout=plugin_choice(cfg.norm_layout, "norm_layout"),
        mask_builder=plugin_choice(cfg.mask_builder, "mask_builder"),
        attention=plugin_choice(cfg.attention, "attention"),
    )
    from glmlab.data.tokenizer import min_vocab_size

    smallest = min_vocab_size(spec.data.n_sentinels)
    if spec.data.vocab_size < smallest:
        raise ConfigError(
            f"data.vocab_size={spec.data.vocab_size}: must be >= {smallest} with "
            f"data.n_sentinels={spec.data.n_sentinels} (256 byte symbols, the special tokens "
            "and room for merges); raise it or lower data.n_sentinels"
        )
    if spec.model.dim % spec.model.n_heads:
        raise ConfigError(
            f"model.dim={spec.model.dim} must be divisible by model.n_heads={spec.model.n_heads}"
        )
    if spec.objective.kind not in ("glm", "mlm", "clm"):
        raise ConfigError(f"objective.kind must be glm, mlm or clm, got '{spec.objective.kind}'")
    if spec.train.keep_checkpoint not in KEEP_CHECKPOINT:
        raise ConfigError(
            f"train.keep_checkpoint must be one of {', '.join(KEEP_CHECKPOINT)}, "
            f"got '{spec.train.keep_checkpoint}'"
        )
    return spec


def chunk_len(spec: RunSpec) -> int:
    """Tokens of text per row: ``seq_len`` minus the share reserved for Part B's extra
    tokens (two per span). MLM needs no reserve; CLM needs one token for the shift."""
    seq_len = spec.data.seq_len
    if spec.objective.kind == "glm":
        return max(8, int(seq_len * (1.0 - spec.data.part_b_reserve)))
    return seq_len + 1 if spec.objective.kind == "clm" else seq_len


def build_objective(
    spec: RunSpec,
    specials: SpecialTokens,
    *,
    vocab_size: int,
    registry: PluginRegistry | None = None,
) -> Objective:
    """The objective the config selects, with span samplers from the registry."""
    registry = registry or get_registry()
    kind = spec.objective.kind
    if kind == "mlm":
        n_special = 6 + len(specials.sentinel_masks) + len(specials.sentinel_sops)
        return MLMObjective(
            specials, vocab_size=vocab_size, n_special=n_special, ratio=spec.objective.mlm_ratio
        )
    if kind == "clm":
        return CLMObjective()
    samplers = []
    for name, options in spec.objective.samplers.items():
        options = dict(options or {})
        weight = float(options.pop("weight", 1.0))
        if weight > 0:
            samplers.append((name, registry.create("span_sampler", name, **options), weight))
    return GLMObjective(
        samplers,
        specials,
        shuffle_spans=spec.objective.shuffle_spans,
        sentinels=spec.objective.sentinels,
        sentinel_position=spec.max_positions,  # the extra table row past every real position
        task_sampling=spec.objective.task_sampling,
    )


def build_mask_builder(spec: RunSpec, registry: PluginRegistry | None = None) -> Any:
    """The configured mask builder; every layout it builds is checked (names the plugin)."""
    name, options = spec.mask_builder
    return checked_mask_builder(name, options, registry)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"train.device={name} but CUDA is not available here; use train.device=cpu or auto"
        )
    return torch.device(name)
