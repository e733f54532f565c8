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
from glmlab.config.schema import SEED_BOUNDS, DataConfig, field_defaults
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
    flops: float  # planned: the head counted at every position (results carry the measured C)
    ratio: float | None = None  # its token rule's tokens per parameter (None: the ladder's)

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
    target_compute: float | None  # None: one rung step past the largest rung (the report's)
    fit: str
    bootstrap: int = 400
    chosen: dict[str, float] = field(default_factory=dict)  # arm key -> chosen lr
    # The grid's seeds (tuning_seed first); [] in a ladder.json from before: [tuning_seed].
    tuning_seeds: list[int] = field(default_factory=list)
    lr_choice: str = "best"  # how an arm's lr is read off its grid (glmlab/ladder/lr.py)
    holdout: str = "none"  # "last": the largest rung is predicted from the smaller ones

    def grid_seeds(self) -> list[int]:
        """Every seed the grid runs on."""
        return list(self.tuning_seeds or [self.tuning_seed])

    def ladder_rungs(self) -> list[Rung]:
        """The rungs at the ladder's own token rule (``tokens_per_param``), smallest first:
        what verdicts, fits and the prediction check read."""
        return [r for r in self.rungs if r.ratio in (None, self.tokens_per_param)]

    def ratio_groups(self) -> dict[float, list[Rung]]:
        """The rungs by token-rule ratio (the budget axis), the ladder's ratio first."""
        out: dict[float, list[Rung]] = {}
        for r in self.rungs:
            out.setdefault(self.tokens_per_param if r.ratio is None else r.ratio, []).append(r)
        return out

    def fit_rungs(self) -> list[Rung]:
        """The rungs the prediction check fits on (all but the held-out one)."""
        rungs = self.ladder_rungs()
        return rungs[:-1] if self.holdout == "last" else rungs

    def held_out(self) -> Rung | None:
        """The rung the prediction check predicts (None without ``holdout``)."""
        return self.ladder_rungs()[-1] if self.holdout == "last" else None

    @staticmethod
    def arm_key(variant: Sequence[str], rung: Rung) -> str:
        """How logs and ladder.json name an arm: the variant's overrides (without the
        experiment and ladder choices every job shares) at the rung."""
        own = [
            o for o in variant if o.partition("=")[0].lstrip("+~") not in ("experiment", "ladder")
        ]
        return f"{', '.join(own) or '(defaults)'} @ {rung.name}"

    def grid_jobs(self) -> list[tuple[list[str], Rung, float, list[str]]]:
        """Phase 1: (variant, rung, lr, overrides) of every grid point on each tuning seed."""
        return [
            (v, r, lr, [*v, *r.overrides(), f"train.lr={show_lr(lr)}", f"seed={s}"])
            for v in self.variants
            for r in self.rungs
            for lr in self.lr_grid
            for s in self.grid_seeds()
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
    tuning = settings.tuning_seed_list()
    shared = sorted(set(tuning) & set(seeds))
    if shared:
        which = (
            f"ladder.tuning_seed={settings.tuning_seed}"
            if settings.tuning_seeds == 1
            else f"ladder.tuning_seed={settings.tuning_seed} with tuning_seeds="
            f"{settings.tuning_seeds} (seeds {tuning[0]}..{tuning[-1]})"
        )
        raise ConfigError(
            f"{which} uses the verdict seed{'s' if len(shared) > 1 else ''} "
            f"{', '.join(map(str, shared))}: pick a seed the verdict does not use, so the lr "
            "choice cannot leak into it"
        )
    if tuning[-1] >= SEED_BOUNDS["lt"]:
        raise ConfigError(
            f"ladder.tuning_seed={settings.tuning_seed} with tuning_seeds={settings.tuning_seeds} "
            f"runs past the largest seed 2**63 - 1: lower ladder.tuning_seed"
        )
    per_step = tokens_per_step(
        int(base["train.batch_size"]), int(base["train.grad_accum"]), int(base["data.seq_len"])
    )
    seq_len = int(base["data.seq_len"])
    warmup = int(base.get("train.warmup_steps", 0))
    rungs: list[Rung] = []
    for ratio in settings.ratios():
        group: list[Rung] = []
        for i, r in enumerate(settings.rungs):
            shape = ModelShape(
                r.n_layers,
                r.dim,
                str(base.get("model.ffn", "gelu")),
                int(base.get("model.ffn_mult", 4)),
                # the head's FLOPs count too
                padded_vocab_size(int(base.get("data.vocab_size", _DEFAULT_VOCAB))),
            )
            n = non_embedding_params(shape)
            steps = round(ratio * n / per_step)
            main = ratio == float(settings.tokens_per_param)
            name = r.label() if main else f"{r.label()}@{ratio:g}"
            key = "tokens_per_param" if main else "budget_axis"
            if steps <= warmup:
                raise ConfigError(
                    f"ladder.rungs[{i}] ({name}, N={n:,}) gets {steps} steps from {key} ratio "
                    f"{ratio:g} at {per_step:,} tokens per step, not more than "
                    f"train.warmup_steps={warmup}: raise ladder.{key} or lower train.batch_size"
                )
            c = training_compute(shape, tokens_per_step=per_step, steps=steps, seq_len=seq_len)
            if group and n <= group[-1].params:
                raise ConfigError(
                    f"ladder.rungs[{i}] ({name}, N={n:,}) is not larger than ladder.rungs[{i - 1}] "
                    f"({group[-1].name}, N={group[-1].params:,}): list the rungs from smallest "
                    "to largest"
                )
            group.append(
                Rung(name, r.n_layers, r.dim, r.n_heads, n, steps, c.tokens, c.flops, ratio)
            )
        rungs += group
    return LadderPlan(
        rungs=rungs,
        variants=[sorted(v) for v in variants],
        seeds=sorted(seeds),
        lr_grid=settings.learning_rates(),
        tuning_seed=settings.tuning_seed,
        tokens_per_param=float(settings.tokens_per_param),
        target_compute=None if settings.target_compute is None else float(settings.target_compute),
        fit=settings.fit,
        bootstrap=settings.bootstrap,
        tuning_seeds=settings.tuning_seed_list(),
        lr_choice=settings.lr_choice,
        holdout=settings.holdout,
    )
