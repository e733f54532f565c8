"""glmlab's config schema, the one list of config keys and groups: one dataclass per group
plus the root :class:`GLMLabConfig`, registered in Hydra's ConfigStore
(:func:`register_schemas`) so that every file in ``conf/`` extends its group's schema
(``defaults: [schema, _self_]``). :class:`~glmlab.config.spec.RunSpec`, the parse step,
:data:`GROUP_SCHEMAS` and the keys outside a run's identity are derived from it; the plugin
groups from the hookspecs' kinds (:data:`~glmlab.plugin.hookspecs.MODEL_GROUP_KINDS`).

The dataclasses are the one source of defaults: a YAML option carries only what it
changes. Types are checked by OmegaConf when Hydra composes the config
(``train.max_steps=lots`` fails there, naming the key); value rules (bounds, choices,
patterns: :func:`~glmlab.config.rules.rule`, as field metadata) and the rules relating
several fields (:func:`~glmlab.config.rules.checks`) are declared here and checked by
:func:`glmlab.config.spec.parse_config`. ``rule(..., identity=False)`` marks a key that never
changes results: a run's fingerprint (glmlab/runs/identity.py), its run directory's name
(glmlab/runs/naming.py) and Hydra's ``exclude_keys`` (conf/config.yaml) all leave it out.
Plugin groups are open mappings ``{name, **options}`` whose options go to the plugin's factory."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from glmlab.config.claims import margins_are_positive
from glmlab.config.rules import IDENTITY, checks, rule
from glmlab.plugin.hookspecs import MODEL_GROUP_KINDS as PLUGIN_GROUPS

__all__ = [
    "GROUP",
    "GROUP_SCHEMAS",
    "KEEP_CHECKPOINT",
    "NAMELESS_CHOICES",
    "ON_CHANGE",
    "PARALLEL",
    "PLUGIN_GROUPS",
    "SCHEMA",
    "SEED_BOUNDS",
    "DataConfig",
    "DistributedConfig",
    "GLMLabConfig",
    "HarnessConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PluginConfig",
    "ReportConfig",
    "RunDirConfig",
    "TrainConfig",
    "excluded_overrides",
    "field_defaults",
    "heads_divide_dim",
    "in_identity",
    "outside_identity",
    "register_schemas",
    "schema_node",
    "seed_rule",
]


# What a seed may be: numpy's generators take >= 0, torch.manual_seed < 2**64, the results'
# tables (pandas, parquet) store int64.
SEED_BOUNDS: dict[str, Any] = {"ge": 0, "lt": 2**63, "text": "from 0 to 2**63 - 1"}


def seed_rule(default: Any = 0) -> Any:
    """A seed field (:data:`SEED_BOUNDS`)."""
    return rule(default, **SEED_BOUNDS)


def heads_divide_dim(shape: Any, group: str) -> list[str]:
    """The rule of every model shape (``model``, a ladder's rungs): heads split the width."""
    if shape.dim % shape.n_heads:
        return [
            f"{group}.dim={shape.dim} must be divisible by {group}.n_heads={shape.n_heads}: "
            "choose a head count that divides the width"
        ]
    return []


# train.keep_checkpoint: what a completed run keeps (glmlab.runs.layout).
KEEP_CHECKPOINT = ("final", "last", "none")

# What a rerun does when the run directory holds a run of another config (`run.on_change`).
ON_CHANGE = ("refuse", "restart", "resume")


@checks(heads_divide_dim)
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
    workers: int = rule(0, ge=0, identity=False)  # loader processes: how fast, not what
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
    stop_after: int | None = rule(None, ge=1, identity=False)
    device: str = rule("auto", pattern=r"auto|cpu|mps|cuda(:\d+)?", text="auto, cpu, mps, cuda:N")
    compile: bool | None = None  # None: on for CUDA, off on CPU
    # Another stream of initialisation and data order for the same seed (the A/A control
    # arm, report.control; glmlab/assembly/seeds.py); null: the seed's own.
    stream: int | None = rule(None, ge=1, lt=2**31)
    # torch intra-op threads on CPU; None: torch's default
    threads: int | None = rule(None, ge=1, identity=False)
    # a progress bar on a terminal; plain log lines otherwise
    progress: bool = rule(True, identity=False)
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
    classify_items: int = rule(256, ge=1)  # closed-class classification items (eval/classify.py)
    eval_suite_seed: int = seed_rule(1234)


@dataclass
class ObjectiveConfig:
    """``objective``: the pretraining task (each option of the group names its kind)."""

    kind: str = rule(MISSING, choices=("glm", "mlm", "clm"))
    shuffle_spans: bool = True
    sentinels: bool = False
    # with sentinels, Part B's first position row: "fixed" (max_seq_length, the reference's
    # layout) or "mask" (each span's mask position, as without sentinels)
    sentinel_positions: str = rule("fixed", choices=("fixed", "mask"))
    # {span sampler registry name: {weight, **its options}}; a glm objective needs one
    samplers: dict[str, dict[str, Any]] = field(default_factory=dict)
    mlm_ratio: float = rule(0.15, gt=0, lt=1)
    # batch: one sampler per batch (the reference) | sample: one per sample
    task_sampling: str = rule("batch", choices=("batch", "sample"))


@dataclass
class PluginConfig:
    """A plugin group (one per kind in the hookspecs' ``MODEL_GROUP_KINDS``, e.g. ``positional``):
    the registry ``name`` plus the factory's options, which are open-ended. Its node is a
    ``Dict[str, Any]`` holding ``name: ???`` (:func:`schema_node`): an option file may add
    any key, an override adds one with ``+positional.<option>=...`` (a typo without ``+``
    is refused when the config is composed); :func:`parse_config` checks ``name`` and the
    registry checks the options against the factory's signature."""

    name: str = MISSING


@checks(margins_are_positive)
@dataclass
class ReportConfig:
    """``report``: what a sweep's report compares and how (docs/REPORTS.md)."""

    baseline: str | None = None  # the baseline variant's overrides: "objective.sentinels=false"
    metric: Any = "final_val_loss"  # the verdict metric: one name or a list of names
    # The equivalence margin of the verdict metrics: one number, {metric: number}, or None
    # for each metric's default (0.02 nats per token for a loss, 0.01 for an accuracy).
    margin: Any = None
    # An A/A control arm: the sweeper adds the baseline again under train.stream=1.
    control: bool = False
    # what the experiment claims to test (glmlab/config/claims.py, docs/EVALUATION.md)
    claims: list[Any] = field(default_factory=list)


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
class HarnessConfig:
    """``harness``: lm-evaluation-harness tasks scored on the final weights at the end of
    a run, their per-item results reported like the suite's (docs/HARNESS.md)."""

    tasks: list[str] = field(default_factory=list)  # lm-eval task, group or tag names
    limit: int | None = rule(None, ge=1)  # items per task (the first N); null: all
    num_fewshot: int | None = rule(None, ge=0)  # null: each task's own default
    include_path: str | None = None  # a folder of your own task YAMLs
    batch_size: int = rule(16, ge=1)  # samples per forward
    mask: str = rule("auto", choices=("auto", "MASK", "sMASK", "gMASK"))  # a GLM run's blank


# Field metadata: how a root key is chosen. "options": a config group whose files
# (conf/<name>/*.yaml) extend the field's schema; "plugin": a plugin group ({name, **options},
# a PluginChoice in the RunSpec); "trackers": the trackers' {name: options}.
GROUP = "group"


OPTIONS = {GROUP: "options"}
NOT_IDENTITY = {IDENTITY: False}


@dataclass
class _Root:
    """The root schema before the plugin groups are added (:class:`GLMLabConfig`)."""

    model: ModelConfig = field(default_factory=ModelConfig, metadata=OPTIONS)
    # (the plugin groups go here, one per MODEL_GROUP_KINDS: see _with_plugin_groups)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig, metadata=OPTIONS)
    data: DataConfig = field(default_factory=DataConfig, metadata=OPTIONS)
    train: TrainConfig = field(default_factory=TrainConfig, metadata=OPTIONS)
    # {tracker registry name: options}: tracker=[tensorboard,mlflow], +tracker.<name>={}
    # (where results are sent, not what they are)
    tracker: dict[str, Any] = field(
        default_factory=dict, metadata={GROUP: "trackers", IDENTITY: False}
    )
    # the experiment's name: multiruns go to sweeps/<name>/
    name: str = rule("default", identity=False)
    seed: int = seed_rule(0)
    # what a report compares; how a rerun goes: not what a run computes
    report: ReportConfig = field(default_factory=ReportConfig, metadata=NOT_IDENTITY)
    run: RunDirConfig = field(default_factory=RunDirConfig, metadata=NOT_IDENTITY)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # what is scored after training (glmlab/harness/), never how the weights are trained
    harness: HarnessConfig = field(
        default_factory=HarnessConfig, metadata={**OPTIONS, **NOT_IDENTITY}
    )


def _with_plugin_groups(cls: type, kinds: list[str]) -> type:
    """``cls`` with one plugin group (``{name: ???, **options}``) per kind, after ``model``."""
    hints = typing.get_type_hints(cls)
    made = [
        (f.name, hints[f.name], _copy(f))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ]
    made[1:1] = [
        (kind, dict[str, Any], field(default_factory=_plugin_node, metadata={GROUP: "plugin"}))
        for kind in kinds
    ]
    out = dataclasses.make_dataclass("GLMLabConfig", made)
    out.__module__ = __name__
    out.__doc__ = (
        "The root schema: every group and the run-level keys (conf/config.yaml extends it); "
        "a plugin group per kind of the hookspecs' MODEL_GROUP_KINDS, after ``model``."
    )
    return out


def _copy(f: dataclasses.Field) -> Any:
    return field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)


def _plugin_node() -> dict[str, Any]:
    return {"name": MISSING}


GLMLabConfig: Any = _with_plugin_groups(_Root, PLUGIN_GROUPS)

# Config groups outside the schema that only set other keys (conf/experiment/*.yaml and
# conf/scale/*.yaml are ``@package _global_``): the values they set count, the choice itself
# names no run (scale=gpu writes under runs/<name>_gpu and sweeps/<name>_gpu instead).
NAMELESS_CHOICES = ("experiment", "scale")


def _group_schema(f: dataclasses.Field, kind: Any) -> type | None:
    return {"options": kind, "plugin": PluginConfig}.get(f.metadata.get(GROUP))


GROUP_SCHEMAS: dict[str, type] = {
    f.name: schema
    for f in dataclasses.fields(GLMLabConfig)
    if (schema := _group_schema(f, typing.get_type_hints(GLMLabConfig)[f.name])) is not None
}
"""The groups with option files in ``conf/<group>/``, each with the schema they extend."""

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


def outside_identity(cls: type = GLMLabConfig, prefix: str = "") -> list[str]:
    """The dotted keys marked ``identity=False`` (a marked group stands for all its keys)."""
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{prefix}{f.name}"
        if f.metadata.get(IDENTITY, True) is False:
            out.append(key)
        elif dataclasses.is_dataclass(hints[f.name]):
            out += outside_identity(hints[f.name], key + ".")
    return out


def in_identity(key: str) -> bool:
    """Whether dotted ``key`` (or an override's key, ``+``/``~`` aside) is part of a run's
    identity: its fingerprint and its run directory's name hold it."""
    key = key.lstrip("+~")
    return not any(key == k or key.startswith(k + ".") for k in (*_OUTSIDE, *NAMELESS_CHOICES))


def excluded_overrides() -> list[str]:
    """Hydra's ``override_dirname.exclude_keys`` as the schema marks them: the override keys
    outside a run's identity (a marked group's leaf keys, as Hydra matches keys exactly)."""
    hints = typing.get_type_hints(GLMLabConfig)
    out = list(NAMELESS_CHOICES)
    for key in _OUTSIDE:
        top = hints.get(key)
        if "." not in key and dataclasses.is_dataclass(top):
            out += [f"{key}.{f.name}" for f in dataclasses.fields(top)]  # type: ignore[arg-type]
            if key in GROUP_SCHEMAS:  # a group with option files: its choice (harness=...) too
                out.append(key)
        else:
            out.append(key)
    return sorted(out)


_OUTSIDE = tuple(outside_identity())
