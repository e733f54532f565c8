"""A ladder sweep's plan (:class:`LadderPlan`): the rungs with the steps, tokens and FLOPs
the token rule gives them, the variants, the grid and the seeds, built by
:func:`build_plan` from the ladder file's checked settings
(:class:`~glmlab.config.ladder.LadderConfig`, glmlab/config/ladder.py) and the experiment's
jobs. The sweeper saves it as ``ladder.json`` and the report reads it back.

A problem that needs the base config or the jobs (a rung without steps, a variant setting a
key the ladder sets, the tuning seed among the verdict seeds) is a
:class:`~glmlab.config.rules.ConfigError` of one line naming the fix, like the settings'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from glmlab.config.ladder import LadderConfig
from glmlab.config.rules import ConfigError
from glmlab.config.schema import DataConfig, field_defaults
from glmlab.data.tokenizer import padded_vocab_size
from glmlab.ladder.compute import (
    ModelShape,
    non_embedding_params,
    tokens_per_step,
    training_compute,
)

_DEFAULT_VOCAB = field_defaults(DataConfig)["vocab_size"]

__all__ = [
    "LADDER_KEYS",
    "LadderPlan",
    "Rung",
    "build_plan",
]

# The overrides the ladder sets on every job; a variant of the experiment may not set them.
RUNG_KEYS = ("model.n_layers", "model.dim", "model.n_heads", "train.max_steps")
LADDER_KEYS = (*RUNG_KEYS, "train.lr", "seed")
# Settings every rung must share, so that a step means the same number of tokens.
SHARED_KEYS = ("train.batch_size", "train.grad_accum", "data.seq_len")


@dataclass(frozen=True)
class Rung:
    """One model size: its shape, and what the token rule gives it."""

    name: str
    n_layers: int
    dim: int
    n_heads: int
    params: int  # non-embedding parameters N
    steps: int
    tokens: int
    flops: float

    def overrides(self) -> list[str]:
        return [
            f"model.n_layers={self.n_layers}",
            f"model.dim={self.dim}",
            f"model.n_heads={self.n_heads}",
            f"train.max_steps={self.steps}",
        ]

    @property
    def shape(self) -> str:
        return f"{self.n_layers}x{self.dim}, {self.n_heads} heads"


@dataclass
class LadderPlan:
    """What a ladder sweep runs: variants x rungs x (grid on the tuning seed, then seeds)."""

    rungs: list[Rung]
    variants: list[list[str]]  # each variant's own overrides (no ladder key, no seed)
    seeds: list[int]
    lr_grid: list[float]
    tuning_seed: int
    tokens_per_param: float
    target_compute: float
    fit: str
    bootstrap: int = 400
    chosen: dict[str, float] = field(default_factory=dict)  # arm key -> chosen lr

    @staticmethod
    def arm_key(variant: Sequence[str], rung: Rung) -> str:
        """How logs and ladder.json name an arm: the variant's overrides (without the
        experiment and ladder choices every job shares) at the rung."""
        own = [
            o for o in variant if o.partition("=")[0].lstrip("+~") not in ("experiment", "ladder")
        ]
        return f"{', '.join(own) or '(defaults)'} @ {rung.name}"

    def grid_jobs(self) -> list[tuple[list[str], Rung, float, list[str]]]:
        """Phase 1: (variant, rung, lr, overrides) of every grid point on the tuning seed."""
        return [
            (v, r, lr, [*v, *r.overrides(), f"train.lr={show_lr(lr)}", f"seed={self.tuning_seed}"])
            for v in self.variants
            for r in self.rungs
            for lr in self.lr_grid
        ]

    def seed_jobs(self) -> list[tuple[list[str], Rung, int, list[str]]]:
        """Phase 2: (variant, rung, seed, overrides) at each arm's chosen learning rate."""
        out = []
        for v in self.variants:
            for r in self.rungs:
                lr = self.chosen.get(self.arm_key(v, r))
                if lr is None:
                    continue
                for s in self.seeds:
                    out.append(
                        (v, r, s, [*v, *r.overrides(), f"train.lr={show_lr(lr)}", f"seed={s}"])
                    )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rungs": [asdict(r) for r in self.rungs]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LadderPlan:
        values = dict(values)
        values["rungs"] = [Rung(**r) for r in values["rungs"]]
        return cls(**values)


def show_lr(lr: float) -> str:
    """A learning rate as the overrides spell it (and a run directory's name shows it)."""
    return f"{lr:g}"


def build_plan(
    settings: LadderConfig,
    base: Mapping[str, Any],
    variants: Sequence[Sequence[str]],
    seeds: Sequence[int],
) -> LadderPlan:
    """The plan for ``variants`` x ``seeds`` of a config whose ``train``/``data``/``model``
    values are ``base`` (dotted keys). :class:`ConfigError` for a rung that the token rule
    gives no steps (or no more than the warmup), a variant that sets a key the ladder sets,
    or a tuning seed among the verdict seeds."""

    def key(o: str) -> str:
        return o.partition("=")[0].lstrip("+~")

    for v in variants:
        clash = [o for o in v if key(o) in LADDER_KEYS]
        if clash:
            raise ConfigError(
                f"the sweep sets {', '.join(clash)}, which the ladder sets per rung and arm: "
                "remove it from the command line and hydra.sweeper.params"
            )
    for k in SHARED_KEYS:  # one value for every variant, or a step means different tokens
        values = {next((o.partition("=")[2] for o in v if key(o) == k), None) for v in variants}
        if len(values) > 1:
            raise ConfigError(
                f"the variants set {k} to different values ({', '.join(sorted(map(str, values)))}): "
                "a ladder needs one batch shape for all of them; sweep it in separate ladders"
            )
    if not seeds:
        raise ConfigError(
            "the experiment sweeps no seed: add e.g. seed: 0,1,2 to hydra.sweeper.params"
        )
    if settings.tuning_seed in seeds:
        raise ConfigError(
            f"ladder.tuning_seed={settings.tuning_seed} is one of the verdict seeds {list(seeds)}: "
            "pick a seed the verdict does not use, so the lr choice cannot leak into it"
        )
    per_step = tokens_per_step(
        int(base["train.batch_size"]), int(base["train.grad_accum"]), int(base["data.seq_len"])
    )
    seq_len = int(base["data.seq_len"])
    warmup = int(base.get("train.warmup_steps", 0))
    rungs: list[Rung] = []
    for i, r in enumerate(settings.rungs):
        shape = ModelShape(
            r.n_layers,
            r.dim,
            str(base.get("model.ffn", "gelu")),
            int(base.get("model.ffn_mult", 4)),
            padded_vocab_size(int(base.get("data.vocab_size", _DEFAULT_VOCAB))),  # the head's FLOPs count too
        )
        n = non_embedding_params(shape)
        steps = round(settings.tokens_per_param * n / per_step)
        name = r.label()
        if steps <= warmup:
            raise ConfigError(
                f"ladder.rungs[{i}] ({name}, N={n:,}) gets {steps} steps from tokens_per_param="
                f"{settings.tokens_per_param:g} at {per_step:,} tokens per step, not more than "
                f"train.warmup_steps={warmup}: raise ladder.tokens_per_param or lower train.batch_size"
            )
        c = training_compute(shape, tokens_per_step=per_step, steps=steps, seq_len=seq_len)
        if rungs and n <= rungs[-1].params:
            raise ConfigError(
                f"ladder.rungs[{i}] ({name}, N={n:,}) is not larger than ladder.rungs[{i - 1}] "
                f"({rungs[-1].name}, N={rungs[-1].params:,}): list the rungs from smallest to largest"
            )
        rungs.append(Rung(name, r.n_layers, r.dim, r.n_heads, n, steps, c.tokens, c.flops))
    fit = settings.fit
    if fit == "auto":
        fit = "own_e" if len(rungs) >= 4 else "shared_e"
    target = float(settings.target_compute or 10.0 * rungs[-1].flops)
    return LadderPlan(
        rungs=rungs,
        variants=[sorted(v) for v in variants],
        seeds=sorted(seeds),
        lr_grid=settings.learning_rates(),
        tuning_seed=settings.tuning_seed,
        tokens_per_param=float(settings.tokens_per_param),
        target_compute=target,
        fit=fit,
        bootstrap=settings.bootstrap,
    )
