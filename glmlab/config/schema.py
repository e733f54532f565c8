"""glmlab's config schema: one dataclass per Hydra config group plus the root
:class:`GLMLabConfig`, registered in Hydra's ConfigStore (:func:`register_schemas`) so that
every file in ``conf/`` extends its group's schema (``defaults: [schema, _self_]``).

The dataclasses are the one source of defaults: a YAML option carries only what it
changes. Types are checked by OmegaConf when Hydra composes the config
(``train.max_steps=lots`` fails there, naming the key); value rules (bounds, choices,
patterns: :func:`rule`, as field metadata) and the cross-field rules are checked by
:func:`parse_config`, which turns the composed config into a :class:`RunSpec` before any
data is loaded, naming every problem at once (:class:`ConfigError`). Plugin groups are
open mappings ``{name, **options}`` whose options go to the plugin's factory; in the
:class:`RunSpec` they are :class:`PluginChoice` tuples."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from glmlab.plugin.hookspecs import MODEL_GROUP_KINDS as PLUGIN_GROUPS

# train.keep_checkpoint: what a completed run keeps (glmlab.runs.layout).
KEEP_CHECKPOINT = ("final", "last", "none")
# What a rerun does when the run directory holds a run of another config (`run.on_change`).
ON_CHANGE = ("refuse", "restart", "resume")

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

    def requirement(self) -> str:
        """What the rule accepts, as the error message words it: ``>= 1``, ``one of a, b``."""
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


# The dataclasses below are the schemas of the config groups and hold every default once:
# the effective default run (``python -m glmlab``: model=tiny, train=cpu, data=stdlib_docs,
# objective=glm_token) is these values plus what those options change.


@dataclass
class ModelConfig:
    """``model``: the Transformer's shape and init (defaults: the CPU-sized ``tiny``)."""

    n_layers: int = rule(2, ge=1)
    dim: int = rule(64, ge=1)
    n_heads: int = rule(4, ge=1)
    ffn: str = rule("gelu", choices=("gelu", "geglu"))
    ffn_mult: int = rule(4, ge=1)
    tie_embeddings: bool = True
    dropout: float = rule(0.0, ge=0, lt=1)  # hidden dropout (embeddings, sublayer outputs)
    # on the attention probabilities (backends with supports_dropout)
    attention_dropout: float = rule(0.0, ge=0, lt=1)
    init_std: float = rule(0.02, gt=0)
    norm_eps: float = rule(1e-5, gt=0)  # every LayerNorm's epsilon (offered to norm layouts)


@dataclass
class DataConfig:
    """``data``: the corpus (each option of the group names its own) and its tokenization."""

    corpus: str = MISSING  # the corpus reader: stdlib_docs, jsonl, text_files, hf
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
    """``train``: the schedule, evaluation and checkpoints (defaults: sized for a 2-core CPU
    on the embedded corpus; ``train=cpu`` adds one torch thread)."""

    max_steps: int = rule(500, ge=1)
    batch_size: int = rule(16, ge=1)
    grad_accum: int = rule(1, ge=1)
    lr: float = rule(3e-3, gt=0)
    min_lr_ratio: float = rule(0.1, ge=0, le=1)
    warmup_steps: int = rule(30, ge=0)
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
    keep_checkpoint: str = rule("final", choices=KEEP_CHECKPOINT)
    # The evaluation suite (glmlab/eval/suite.py, docs/EVALUATION.md): at the end of the run
    # and every eval_suite_interval steps if set; items and seed are the same for every variant.
    eval_suite: bool = True
    eval_suite_interval: int | None = rule(None, ge=1)
    eval_suite_items: int = rule(128, ge=1)  # held-out passages per infilling task
    # chance 0.25 with 3 distractors: 256 items put a run's standard error near 0.03
    cloze_items: int = rule(256, ge=1)
    cloze_distractors: int = rule(3, ge=1)  # wrong candidates per cloze item (chance = 1 / (k + 1))
    eval_suite_seed: int = 1234


@dataclass
class ObjectiveConfig:
    """``objective``: the pretraining task (each option of the group names its kind)."""

    kind: str = rule(MISSING, choices=("glm", "mlm", "clm"))
    shuffle_spans: bool = True
    sentinels: bool = False
    # {span sampler registry name: {weight, **its options}}; a glm objective needs one
    samplers: dict[str, dict[str, Any]] = field(default_factory=dict)
    mlm_ratio: float = rule(0.15, gt=0, lt=1)
    # batch: one sampler per batch (the reference) | sample: one per sample
    task_sampling: str = rule("batch", choices=("batch", "sample"))


@dataclass
class PluginConfig:
    """A plugin group (``positional``, ``norm_layout``, ``mask_builder``, ``attention``):
    the registry ``name`` plus the factory's options, which are open-ended. Its node is a
    ``Dict[str, Any]`` holding ``name: ???`` (:func:`schema_node`): an option file may add
    any key, an override adds one with ``+positional.<option>=...`` (a typo without ``+``
    is refused when the config is composed); :func:`parse_config` checks ``name`` and the
    registry checks the options against the factory's signature."""

    name: str = MISSING


class PluginChoice(NamedTuple):
    """A plugin group in the :class:`RunSpec`: ``name, options = spec.positional``."""

    name: str
    options: dict[str, Any]


@dataclass
class ReportConfig:
    """``report``: what a sweep's report compares (docs/REPORTS.md)."""

    baseline: str | None = None  # the baseline variant's overrides: "objective.sentinels=false"
    metric: Any = "final_val_loss"  # the verdict metric: one name or a list of names


PARALLEL = ("ddp", "fsdp")  # how several processes share the model


@dataclass
class RunDirConfig:
    """``run``: what a rerun does in a directory that holds a run made with another config
    (docs/RELIABILITY.md); null: refuse for a single run, restart for a sweep."""

    on_change: str | None = rule(None, choices=ON_CHANGE)


@dataclass
class DistributedConfig:
    """``distributed``: runs of several processes (torchrun, multi-task Slurm jobs)."""

    parallel: str = rule("ddp", choices=PARALLEL)  # fsdp (FSDP2): models that do not fit a GPU


@dataclass
class GLMLabConfig:
    """The root schema: every group and the run-level keys (conf/config.yaml extends it)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    # plugin groups: open mappings {name: <registry name>, **options} (see PluginConfig)
    positional: dict[str, Any] = field(default_factory=lambda: {"name": MISSING})
    norm_layout: dict[str, Any] = field(default_factory=lambda: {"name": MISSING})
    mask_builder: dict[str, Any] = field(default_factory=lambda: {"name": MISSING})
    attention: dict[str, Any] = field(default_factory=lambda: {"name": MISSING})
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # {tracker registry name: options}: tracker=[tensorboard,mlflow], +tracker.<name>={}
    tracker: dict[str, Any] = field(default_factory=dict)
    name: str = "default"  # the experiment's name: multiruns go to sweeps/<name>/
    seed: int = 0
    report: ReportConfig = field(default_factory=ReportConfig)
    run: RunDirConfig = field(default_factory=RunDirConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "objective": ObjectiveConfig,
    **dict.fromkeys(PLUGIN_GROUPS, PluginConfig),
}
SCHEMA = "schema"  # the name each group's schema has in the ConfigStore


def schema_node(cls: type) -> DictConfig:
    """``cls`` as an OmegaConf node; a plugin group's is the open mapping ``{name: ???}``."""
    if cls is PluginConfig:
        return OmegaConf.create({"name": MISSING})
    return OmegaConf.structured(cls)


def register_schemas() -> None:
    """Store the root schema as ``schema`` and each group's as ``<group>/schema`` in
    Hydra's ConfigStore; conf/ files extend them with ``defaults: [schema, _self_]``."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=SCHEMA, node=schema_node(GLMLabConfig))
    for group, cls in GROUP_SCHEMAS.items():
        store.store(group=group, name=SCHEMA, node=schema_node(cls))


def field_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a schema dataclass (fields without a default left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default is not dataclasses.MISSING and f.default != MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            made = f.default_factory()
            if not dataclasses.is_dataclass(made):
                out[f.name] = made
    return out


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


def _type_name(kind: Any) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        named = [_type_name(a) for a in args if a is not type(None)]
        return ("null or " if type(None) in args else "") + " or ".join(named)
    origin = typing.get_origin(kind) or kind
    return _TYPE_NAMES.get(
        origin, "a mapping" if origin is dict else getattr(origin, "__name__", str(origin))
    )


def show_value(value: Any) -> str:
    """A config value as the command line spells it: null, true, 0.003."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed_text(kind: Any, allowed: Allowed | None) -> str:
    """What a field accepts, for ``must be ...``: ``an integer >= 1``, ``one of a, b``."""
    rule_text = allowed.requirement() if allowed is not None else ""
    return (
        rule_text if rule_text.startswith("one of") else f"{_type_name(kind)} {rule_text}".strip()
    )


def check_values(obj: Any, group: str) -> list[str]:
    """One line per field of dataclass ``obj`` whose value has the wrong type or is out of
    what its :class:`Allowed` rule accepts: ``train.max_steps=0: must be an integer >= 1``."""
    hints = typing.get_type_hints(type(obj))
    problems = []
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), hints[f.name]
        allowed: Allowed | None = f.metadata.get("allowed")
        if value == MISSING:
            problems.append(f"{group}.{f.name} is missing: must be {allowed_text(kind, allowed)}")
        elif not _type_ok(value, kind) or (allowed is not None and allowed.violated_by(value)):
            problems.append(
                f"{group}.{f.name}={show_value(value)}: must be {allowed_text(kind, allowed)}"
            )
    return problems


def _container(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _checked(cls: type[T], node: Any, group: str, problems: list[str]) -> T | None:
    """``cls`` from a config node; its problems (unknown keys, types, rules) are appended
    to ``problems`` and None returned when there are any."""
    values = _container(node)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        problems.append(f"{group}={show_value(values)}: must be a mapping of {cls.__name__} keys")
        return None
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        problems.append(
            f"unknown key(s) {unknown} in the '{group}' config; valid keys: {sorted(names)}"
        )
        return None
    obj = cls(**values)
    found = check_values(obj, group)
    problems.extend(found)
    return None if found else obj


def to_dataclass(cls: type[T], node: DictConfig | dict | None, group: str) -> T:
    """Build ``cls`` from a config node; unknown keys and values of the wrong type or out
    of range raise :class:`ConfigError` (one line per problem, all of them at once)."""
    problems: list[str] = []
    obj = _checked(cls, node, group, problems)
    if obj is None:
        raise ConfigError("; ".join(problems))
    return obj


def plugin_choice(node: DictConfig | dict, group: str) -> PluginChoice:
    """Split a plugin group (``{name: ..., **options}``) into the registry name and options."""
    values = _container(node)
    if not isinstance(values, dict) or values.get("name") in (None, MISSING, ""):
        raise ConfigError(
            f"the '{group}' config needs a 'name' key selecting a registered plugin "
            f"({group}=<name> or {group}.name=<name>)"
        )
    values = dict(values)
    name = values.pop("name")
    if not isinstance(name, str):
        raise ConfigError(f"{group}.name={show_value(name)}: must be a registered plugin's name")
    return PluginChoice(name, values)


def _metric_names(metric: Any) -> bool:
    names = [metric] if isinstance(metric, str) else metric
    return isinstance(names, list) and bool(names) and all(isinstance(m, str) for m in names)


def tracker_choices(node: Any) -> dict[str, dict[str, Any]]:
    """``{name: options}`` of the trackers a ``tracker`` node selects (a mapping, as the
    tracker group composes it, or a list of names); :class:`ConfigError` otherwise."""
    node = _container(node)
    if node is None:
        return {}
    if isinstance(node, str):
        node = [node]
    if isinstance(node, list) and all(isinstance(n, str) for n in node):
        return {n: {} for n in node}
    if isinstance(node, dict) and all(isinstance(o, dict | None) for o in node.values()):
        return {str(name): dict(options or {}) for name, options in node.items()}
    raise ConfigError(
        f"tracker={show_value(node)}: must be a list of tracker names (tracker=[tensorboard,mlflow]) "
        "or a mapping {name: options}"
    )


@dataclass
class RunSpec:
    """The typed, checked config of one run (:func:`parse_config`)."""

    seed: int
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    objective: ObjectiveConfig
    positional: PluginChoice
    norm_layout: PluginChoice
    mask_builder: PluginChoice
    attention: PluginChoice
    name: str = "default"
    report: ReportConfig = field(default_factory=ReportConfig)
    run: RunDirConfig = field(default_factory=RunDirConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    tracker: dict[str, dict[str, Any]] = field(default_factory=dict)  # {name: options}

    @property
    def max_positions(self) -> int:
        return self.data.seq_len


def _cross_field_problems(spec: RunSpec) -> list[str]:
    """The rules that relate several fields."""
    from glmlab.data.tokenizer import min_vocab_size

    problems = []
    smallest = min_vocab_size(spec.data.n_sentinels)
    if spec.data.vocab_size < smallest:
        problems.append(
            f"data.vocab_size={spec.data.vocab_size}: must be >= {smallest} with "
            f"data.n_sentinels={spec.data.n_sentinels} (256 byte symbols, the special tokens "
            "and room for merges); raise it or lower data.n_sentinels"
        )
    if spec.model.dim % spec.model.n_heads:
        problems.append(
            f"model.dim={spec.model.dim} must be divisible by model.n_heads={spec.model.n_heads}"
        )
    weights = [(o or {}).get("weight", 1.0) for o in spec.objective.samplers.values()]
    if spec.objective.kind == "glm" and not any(
        isinstance(w, int | float) and w > 0 for w in weights
    ):
        problems.append(
            "objective.samplers: a glm objective needs at least one span sampler with "
            "weight > 0, e.g. objective=glm_token"
        )
    if not _metric_names(spec.report.metric):
        problems.append(
            f"report.metric={show_value(spec.report.metric)}: must be a metric name or a list of names"
        )
    return problems


def parse_config(cfg: DictConfig | dict[str, Any]) -> RunSpec:
    """Check the composed config (or one read back from a run directory) into a
    :class:`RunSpec`: unknown keys, values of the wrong type or out of range (the rules on
    the dataclasses above) and the cross-field rules are one :class:`ConfigError`, one
    ``key=value: what is allowed`` per problem, before anything is loaded."""
    get = cfg.get
    problems: list[str] = []
    seed, name = get("seed", 0), get("name", "default")
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed={show_value(seed)}: must be an integer")
    if not isinstance(name, str):
        problems.append(f"name={show_value(name)}: must be a string")
    groups = {
        "model": ModelConfig,
        "data": DataConfig,
        "train": TrainConfig,
        "objective": ObjectiveConfig,
        "report": ReportConfig,
        "run": RunDirConfig,
        "distributed": DistributedConfig,
    }
    typed = {group: _checked(cls, get(group), group, problems) for group, cls in groups.items()}
    plugins: dict[str, PluginChoice] = {}
    for group in PLUGIN_GROUPS:
        try:
            plugins[group] = plugin_choice(get(group) or {}, group)
        except ConfigError as exc:
            problems.append(str(exc))
    trackers: dict[str, dict[str, Any]] = {}
    try:
        trackers = tracker_choices(get("tracker"))
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(problems))
    spec = RunSpec(seed=seed, name=name, tracker=trackers, **typed, **plugins)  # type: ignore[arg-type]
    problems = _cross_field_problems(spec)
    if problems:
        raise ConfigError("; ".join(problems))
    return spec
