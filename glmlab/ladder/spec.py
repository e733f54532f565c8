"""A ladder file's settings (``hydra.sweeper.ladder``, conf/ladder/*.yaml), checked before
any run: the rungs (model sizes), the token rule, the learning-rate grid, the tuning seed
and the extrapolation target; and the sweep's plan built from them (:class:`LadderPlan`),
which the sweeper saves as ``ladder.json`` and the report reads back.

Every problem is a :class:`LadderError` of one line naming the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

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
    "FIT_MODES",
    "LADDER_KEYS",
    "LadderError",
    "LadderPlan",
    "LadderSettings",
    "Rung",
    "build_plan",
    "parse_settings",
]

# The overrides the ladder sets on every job; a variant of the experiment may not set them.
RUNG_KEYS = ("model.n_layers", "model.dim", "model.n_heads", "train.max_steps")
LADDER_KEYS = (*RUNG_KEYS, "train.lr", "seed")
# Settings every rung must share, so that a step means the same number of tokens.
SHARED_KEYS = ("train.batch_size", "train.grad_accum", "data.seq_len")
# How the saturating power law is fitted (glmlab/ladder/fit.py): E shared by the sweep's
# variants, each variant its own E (4+ rungs), or a pure power law in log space (no E).
FIT_MODES = ("auto", "shared_e", "own_e", "log")
MIN_RUNGS = 3
MIN_GRID = 3


class LadderError(ValueError):
    """A ladder setting glmlab cannot use; the message says what to change."""


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


@dataclass(frozen=True)
class LadderSettings:
    """The ladder file's settings, checked (:func:`parse_settings`)."""

    rungs: list[dict[str, Any]]
    tokens_per_param: float
    lr_grid: list[float]
    tuning_seed: int
    target_compute: float | None = None  # FLOPs; None: 10x the largest rung's
    fit: str = "auto"
    bootstrap: int = 400  # seed resamples for the fit's intervals


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_settings(node: Mapping[str, Any] | None) -> LadderSettings:
    """The ladder settings from the sweeper's ``ladder`` node; :class:`LadderError` on the
    first problem."""
    if not isinstance(node, Mapping) or not node:
        raise LadderError(
            "hydra.sweeper.ladder is empty: pick a ladder file (+ladder=cpu) or set "
            "rungs, tokens_per_param, lr_grid and tuning_seed under hydra.sweeper.ladder"
        )
    known = {
        "rungs",
        "tokens_per_param",
        "lr_grid",
        "tuning_seed",
        "target_compute",
        "fit",
        "bootstrap",
    }
    unknown = sorted(set(node) - known)
    if unknown:
        raise LadderError(
            f"hydra.sweeper.ladder: unknown key(s) {unknown}; valid keys: {sorted(known)}"
        )
    rungs = node.get("rungs")
    if not isinstance(rungs, Sequence) or isinstance(rungs, str) or len(rungs) < MIN_RUNGS:
        raise LadderError(
            f"ladder.rungs: list at least {MIN_RUNGS} model sizes "
            "({n_layers, dim, n_heads} each, smallest first)"
        )
    checked = []
    for i, r in enumerate(rungs):
        if not isinstance(r, Mapping):
            raise LadderError(f"ladder.rungs[{i}]: must be a mapping {{n_layers, dim, n_heads}}")
        extra = sorted(set(r) - {"name", "n_layers", "dim", "n_heads"})
        if extra:
            raise LadderError(
                f"ladder.rungs[{i}]: unknown key(s) {extra}; a rung sets name, n_layers, dim, n_heads"
            )
        for key in ("n_layers", "dim", "n_heads"):
            v = r.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise LadderError(f"ladder.rungs[{i}].{key}={v}: must be an integer >= 1")
        if r["dim"] % r["n_heads"]:
            raise LadderError(
                f"ladder.rungs[{i}]: n_heads={r['n_heads']} does not divide dim={r['dim']}: "
                "choose a head count that divides the width"
            )
        checked.append(dict(r))
    ratio = node.get("tokens_per_param")
    if not _num(ratio) or ratio <= 0:
        raise LadderError(f"ladder.tokens_per_param={ratio}: must be a number > 0 (e.g. 20)")
    grid = node.get("lr_grid")
    if not isinstance(grid, Sequence) or isinstance(grid, str) or not all(_num(g) for g in grid):
        raise LadderError(f"ladder.lr_grid={grid}: must be a list of learning rates")
    values = sorted({float(g) for g in grid})
    if len(values) < MIN_GRID:
        raise LadderError(
            f"ladder.lr_grid={list(grid)}: needs at least {MIN_GRID} distinct learning rates, "
            "log-spaced around the default (e.g. [1e-3, 3e-3, 1e-2])"
        )
    if values[0] <= 0:
        raise LadderError(f"ladder.lr_grid={list(grid)}: every learning rate must be > 0")
    steps = [math.log(b / a) for a, b in zip(values, values[1:], strict=False)]
    if max(steps) > 2.0 * min(steps):
        raise LadderError(
            f"ladder.lr_grid={list(grid)}: not log-spaced (consecutive ratios differ by more "
            "than 2x): use a constant ratio, e.g. [1e-3, 3e-3, 1e-2]"
        )
    seed = node.get("tuning_seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise LadderError(f"ladder.tuning_seed={seed}: must be an integer (not a verdict seed)")
    target = node.get("target_compute")
    if target is not None and (not _num(target) or target <= 0):
        raise LadderError(f"ladder.target_compute={target}: must be a number of FLOPs > 0, or null")
    fit = node.get("fit", "auto")
    if fit not in FIT_MODES:
        raise LadderError(f"ladder.fit={fit}: must be one of {', '.join(FIT_MODES)}")
    boot = node.get("bootstrap", 400)
    if not isinstance(boot, int) or isinstance(boot, bool) or boot < 0:
        raise LadderError(f"ladder.bootstrap={boot}: must be an integer >= 0 (seed resamples)")
    return LadderSettings(
        checked, float(ratio), values, seed, None if target is None else float(target), fit, boot
    )


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
    settings: LadderSettings,
    base: Mapping[str, Any],
    variants: Sequence[Sequence[str]],
    seeds: Sequence[int],
) -> LadderPlan:
    """The plan for ``variants`` x ``seeds`` of a config whose ``train``/``data``/``model``
    values are ``base`` (dotted keys). :class:`LadderError` for a rung that the token rule
    gives no steps (or no more than the warmup), a variant that sets a key the ladder sets,
    or a tuning seed among the verdict seeds."""

    def key(o: str) -> str:
        return o.partition("=")[0].lstrip("+~")

    for v in variants:
        clash = [o for o in v if key(o) in LADDER_KEYS]
        if clash:
            raise LadderError(
                f"the sweep sets {', '.join(clash)}, which the ladder sets per rung and arm: "
                "remove it from the command line and hydra.sweeper.params"
            )
    for k in SHARED_KEYS:  # one value for every variant, or a step means different tokens
        values = {next((o.partition("=")[2] for o in v if key(o) == k), None) for v in variants}
        if len(values) > 1:
            raise LadderError(
                f"the variants set {k} to different values ({', '.join(sorted(map(str, values)))}): "
                "a ladder needs one batch shape for all of them; sweep it in separate ladders"
            )
    if not seeds:
        raise LadderError(
            "the experiment sweeps no seed: add e.g. seed: 0,1,2 to hydra.sweeper.params"
        )
    if settings.tuning_seed in seeds:
        raise LadderError(
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
            r["n_layers"],
            r["dim"],
            str(base.get("model.ffn", "gelu")),
            int(base.get("model.ffn_mult", 4)),
            padded_vocab_size(int(base.get("data.vocab_size", _DEFAULT_VOCAB))),  # the head's FLOPs count too
        )
        n = non_embedding_params(shape)
        steps = round(settings.tokens_per_param * n / per_step)
        name = str(r.get("name") or f"{r['n_layers']}x{r['dim']}")
        if steps <= warmup:
            raise LadderError(
                f"ladder.rungs[{i}] ({name}, N={n:,}) gets {steps} steps from tokens_per_param="
                f"{settings.tokens_per_param:g} at {per_step:,} tokens per step, not more than "
                f"train.warmup_steps={warmup}: raise ladder.tokens_per_param or lower train.batch_size"
            )
        c = training_compute(shape, tokens_per_step=per_step, steps=steps, seq_len=seq_len)
        if rungs and n <= rungs[-1].params:
            raise LadderError(
                f"ladder.rungs[{i}] ({name}, N={n:,}) is not larger than ladder.rungs[{i - 1}] "
                f"({rungs[-1].name}, N={rungs[-1].params:,}): list the rungs from smallest to largest"
            )
        rungs.append(Rung(name, r["n_layers"], r["dim"], r["n_heads"], n, steps, c.tokens, c.flops))
    if len({r.name for r in rungs}) < len(rungs):
        raise LadderError("ladder.rungs: two rungs have the same name: give each its own")
    fit = settings.fit
    if fit == "auto":
        fit = "own_e" if len(rungs) >= 4 else "shared_e"
    target = settings.target_compute or 10.0 * rungs[-1].flops
    return LadderPlan(
        rungs=rungs,
        variants=[sorted(v) for v in variants],
        seeds=sorted(seeds),
        lr_grid=list(settings.lr_grid),
        tuning_seed=settings.tuning_seed,
        tokens_per_param=settings.tokens_per_param,
        target_compute=target,
        fit=fit,
        bootstrap=settings.bootstrap,
    )
