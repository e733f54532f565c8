"""Assembly: turn a composed Hydra config into the run's parts, asking the registry for
every plugin by name. Nothing here imports a built-in plugin."""

from __future__ import annotations

from typing import Any

import torch

# RunSpec and parse_config live in glmlab.config; imported here for existing callers.
from glmlab.config import ConfigError, RunSpec, parse_config
from glmlab.model.build import checked_mask_builder
from glmlab.objective import CLMObjective, GLMObjective, MLMObjective, Objective
from glmlab.registry import PluginRegistry, get_registry
from glmlab.structures import SpecialTokens

__all__ = [
    "RunSpec",
    "build_mask_builder",
    "build_objective",
    "chunk_len",
    "parse_config",
    "resolve_device",
]


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
