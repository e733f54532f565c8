"""Typed views of the Hydra config groups. Each dataclass mirrors one ``conf/<group>/``
file; an unknown key is a clear error naming the group and the valid keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that glmlab cannot use; the message says what to change."""


@dataclass
class ModelConfig:
    n_layers: int = 2
    dim: int = 128
    n_heads: int = 4
    ffn: str = "gelu"  # gelu | geglu
    ffn_mult: int = 4
    tie_embeddings: bool = True
    dropout: float = 0.0
    init_std: float = 0.02


@dataclass
class DataConfig:
    corpus: str = "stdlib_docs"
    corpus_options: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 4096
    n_sentinels: int = 100
    seq_len: int = 128
    packing: bool = True
    part_b_reserve: float = 0.125  # share of seq_len kept free for Part B ([sop] + [eop] per span)
    min_tokens: int = 8
    workers: int = 0


@dataclass
class TrainConfig:
    max_steps: int = 200
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_batches: int = 8
    log_interval: int = 10
    checkpoint_interval: int = 100
    stop_after: int | None = (
        None  # end this invocation after N steps (resumable), for preemption tests
    )
    device: str = "auto"  # auto | cpu | cuda
    compile: bool | None = None  # None: on for CUDA, off on CPU
    threads: int | None = None  # torch intra-op threads on CPU; None leaves torch's default
    progress: bool = True  # a progress bar on a terminal; plain log lines otherwise
    # What stays in a completed run's directory: "final" (the final weights, weights.pt;
    # the resumable training state is removed), "last" (checkpoint.pt as well), "none".
    keep_checkpoint: str = "final"
    # The evaluation suite (glmlab/evaluation.py, docs/EVALUATION.md): at the end of the run
    # and every eval_suite_interval steps if set; items and seed are the same for every variant.
    eval_suite: bool = True
    eval_suite_interval: int | None = None
    eval_suite_items: int = 64  # held-out passages per infilling task
    cloze_items: int = 64
    cloze_distractors: int = 3  # wrong candidates per cloze item (chance = 1 / (k + 1))
    eval_suite_seed: int = 1234


@dataclass
class ObjectiveConfig:
    kind: str = "glm"  # glm | mlm | clm
    shuffle_spans: bool = True
    sentinels: bool = False
    samplers: dict[str, dict[str, Any]] = field(default_factory=lambda: {"token": {"weight": 1.0}})
    mlm_ratio: float = 0.15


def to_dataclass(cls: type[T], node: DictConfig | dict | None, group: str) -> T:
    """Build ``cls`` from a config node; unknown keys raise :class:`ConfigError`."""
    values = (
        OmegaConf.to_container(node, resolve=True)
        if isinstance(node, DictConfig)
        else dict(node or {})
    )
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in the '{group}' config; valid keys: {sorted(names)}"
        )
    return cls(**values)


def plugin_choice(node: DictConfig | dict, group: str) -> tuple[str, dict[str, Any]]:
    """Split a plugin group (``{name: ..., **options}``) into the registry name and options."""
    values = (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )
    if "name" not in values:
        raise ConfigError(f"the '{group}' config needs a 'name' key selecting a registered plugin")
    name = values.pop("name")
    return str(name), values
