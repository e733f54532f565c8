"""The typed config of one run (:class:`RunSpec`) and its validation. The run's parts are
built from it by :func:`glmlab.assembly.build_run`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from glmlab.rundir import KEEP_CHECKPOINT


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
