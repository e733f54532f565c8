"""Typed views of the Hydra config groups. Each dataclass mirrors one ``conf/<group>/``
file; an unknown key is a clear error naming the group and the valid keys.

Every field declares its type and, where a value can be out of range, what it allows
(:func:`rule`, as field metadata, so the classes can also serve as Hydra structured-config
schemas); :func:`check_values` checks a whole group at once, before any data is loaded."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that glmlab cannot use; the message says what to change."""


@dataclass(frozen=True)
class Allowed:
    """What a config field accepts beyond its type: bounds, a list of choices, a pattern.
    Declared on the field (``field(metadata={"allowed": Allowed(...)})``, see :func:`rule`)
    and enforced by :func:`check_values` before any data is loaded."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    text: str | None = None  # how a message names what ``pattern`` accepts

    def violated_by(self, value: Any) -> bool:
        if value is None:
            return False
        if self.choices is not None and value not in self.choices:
            return True
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            return True
        bounds = [
            (self.ge, lambda b: value >= b),
            (self.gt, lambda b: value > b),
            (self.le, lambda b: value <= b),
            (self.lt, lambda b: value < b),
        ]
        return any(b is not None and not ok(b) for b, ok in bounds)

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.pattern is not None:
            return "one of " + (self.text or f"the strings matching {self.pattern}")
        low = next(
            (f"{op} {b:g}" for op, b in ((">=", self.ge), (">", self.gt)) if b is not None), ""
        )
        high = next(
            (f"{op} {b:g}" for op, b in (("<=", self.le), ("<", self.lt)) if b is not None), ""
        )
        return " and ".join(x for x in (low, high) if x)


def rule(default: Any = dataclasses.MISSING, **allowed: Any) -> Any:
    """A dataclass field with a default and what it allows: ``rule(200, ge=1)``."""
    return field(default=default, metadata={"allowed": Allowed(**allowed)})


@dataclass
class ModelConfig:
    n_layers: int = rule(2, ge=1)
    dim: int = rule(128, ge=1)
    n_heads: int = rule(4, ge=1)
    ffn: str = rule("gelu", choices=("gelu", "geglu"))
    ffn_mult: int = rule(4, ge=1)
    tie_embeddings: bool = True
    dropout: float = rule(0.0, ge=0, lt=1)
    attention_dropout: float = rule(0.0, ge=0, lt=1)
    init_std: float = rule(0.02, gt=0)
    norm_eps: float = rule(1e-5, gt=0)  # every LayerNorm's epsilon (offered to norm layouts)


@dataclass
class DataConfig:
    corpus: str = "stdlib_docs"
    corpus_options: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = rule(4096, ge=1)
    n_sentinels: int = rule(100, ge=0)
    seq_len: int = rule(128, ge=16)
    packing: bool = True
    # share of seq_len kept free for Part B ([sop] + [eop] per span)
    part_b_reserve: float = rule(0.125, ge=0, lt=1)
    min_tokens: int = rule(8, ge=1)
    workers: int = rule(0, ge=0)
    tokenizer_file: str | None = None  # a glmlab tokenizer.json to use instead of training one


@dataclass
class TrainConfig:
    max_steps: int = rule(200, ge=1)
    batch_size: int = rule(16, ge=1)
    grad_accum: int = rule(1, ge=1)
    lr: float = rule(3e-3, gt=0)
    min_lr_ratio: float = rule(0.1, ge=0, le=1)
    warmup_steps: int = rule(20, ge=0)
    weight_decay: float = rule(0.1, ge=0)
    beta1: float = rule(0.9, ge=0, lt=1)
    beta2: float = rule(0.95, ge=0, lt=1)
    grad_clip: float = rule(1.0, gt=0)
    eval_interval: int = rule(100, ge=1)
    eval_batches: int = rule(8, ge=1)
    log_interval: int = rule(10, ge=1)
    checkpoint_interval: int = rule(100, ge=1)
    # end this invocation after N steps (resumable), for preemption tests
    stop_after: int | None = rule(None, ge=1)
    device: str = rule(
        "auto", pattern=r"auto|cpu|mps|cuda(:\d+)?", text="auto, cpu, mps, cuda, cuda:N"
    )
    compile: bool | None = None  # None: on for CUDA, off on CPU
    threads: int | None = rule(None, ge=1)  # torch intra-op threads on CPU; None: torch's default
    progress: bool = True  # a progress bar on a terminal; plain log lines otherwise
    # What stays in a completed run's directory: "final" (the final weights, weights.pt;
    # the resumable training state is removed), "last" (checkpoint.pt as well), "none".
    keep_checkpoint: str = rule("final", choices=("final", "last", "none"))
    # The evaluation suite (glmlab/evaluation.py, docs/EVALUATION.md): at the end of the run
    # and every eval_suite_interval steps if set; items and seed are the same for every variant.
    eval_suite: bool = True
    eval_suite_interval: int | None = rule(None, ge=1)
    eval_suite_items: int = rule(64, ge=1)  # held-out passages per infilling task
    cloze_items: int = rule(64, ge=1)
    cloze_distractors: int = rule(3, ge=1)  # wrong candidates per cloze item (chance = 1 / (k + 1))
    eval_suite_seed: int = 1234


@dataclass
class ObjectiveConfig:
    kind: str = rule("glm", choices=("glm", "mlm", "clm"))
    shuffle_spans: bool = True
    sentinels: bool = False
    samplers: dict[str, dict[str, Any]] = field(default_factory=lambda: {"token": {"weight": 1.0}})
    mlm_ratio: float = rule(0.15, gt=0, lt=1)
    # batch: one sampler per batch (the reference) | sample: one per sample
    task_sampling: str = rule("batch", choices=("batch", "sample"))


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _type_ok(value: Any, kind: Any) -> bool:
    """Whether ``value`` (from YAML/Hydra) is of the annotated type ``kind``."""
    if kind is Any:
        return True
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return any(_type_ok(value, a) for a in args)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    origin = typing.get_origin(kind) or kind
    return isinstance(value, origin)


def _describe_type(kind: Any) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        named = [_describe_type(a) for a in args if a is not type(None)]
        return ("null or " if type(None) in args else "") + " or ".join(named)
    origin = typing.get_origin(kind) or kind
    return _TYPE_NAMES.get(
        origin, "a mapping" if origin is dict else getattr(origin, "__name__", str(origin))
    )


def _show(value: Any) -> str:
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_values(obj: Any, group: str) -> list[str]:
    """One line per field of dataclass ``obj`` whose value has the wrong type or is out of
    what its :class:`Allowed` rule accepts: ``train.max_steps=0: must be an integer >= 1``."""
    hints = typing.get_type_hints(type(obj))
    problems = []
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), hints[f.name]
        allowed: Allowed | None = f.metadata.get("allowed")
        if not _type_ok(value, kind) or (allowed is not None and allowed.violated_by(value)):
            rule_text = allowed.describe() if allowed is not None else ""
            if rule_text.startswith("one of"):
                wanted = rule_text
            else:
                wanted = f"{_describe_type(kind)} {rule_text}".strip()
            problems.append(f"{group}.{f.name}={_show(value)}: must be {wanted}")
    return problems


def to_dataclass(cls: type[T], node: DictConfig | dict | None, group: str) -> T:
    """Build ``cls`` from a config node; unknown keys and values of the wrong type or out
    of range raise :class:`ConfigError` (one line per problem, all of them at once)."""
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
    obj = cls(**values)
    problems = check_values(obj, group)
    if problems:
        raise ConfigError("; ".join(problems))
    return obj


def plugin_choice(node: DictConfig | dict, group: str) -> tuple[str, dict[str, Any]]:
    """Split a plugin group (``{name: ..., **options}``) into the registry name and options."""
    values = (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )
    if "name" not in values:
        raise ConfigError(f"the '{group}' config needs a 'name' key selecting a registered plugin")
    name = values.pop("name")
    return str(name), values
