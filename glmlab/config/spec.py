"""From a composed config to a :class:`RunSpec`, the typed, checked config of one run:
:func:`parse_config` checks every group's values and the rules that relate several fields
before any data is loaded, naming every problem at once. Plugin groups become
:class:`PluginChoice` tuples, the tracker node ``{name: options}``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from omegaconf import MISSING, DictConfig

from glmlab.config.claims import parse_claims
from glmlab.config.rules import ConfigError, checked_dataclass, plain_container, show_value
from glmlab.config.schema import (
    DataConfig,
    DistributedConfig,
    ModelConfig,
    ObjectiveConfig,
    ReportConfig,
    RunDirConfig,
    TrainConfig,
)
from glmlab.plugin.hookspecs import MODEL_GROUP_KINDS as PLUGIN_GROUPS

__all__ = [
    "PluginChoice",
    "RunSpec",
    "parse_config",
    "plugin_choice",
    "tracker_choices",
]


class PluginChoice(NamedTuple):
    """A plugin group in the :class:`RunSpec`: ``name, options = spec.positional``."""

    name: str
    options: dict[str, Any]


def plugin_choice(node: DictConfig | dict, group: str) -> PluginChoice:
    """Split a plugin group (``{name: ..., **options}``) into the registry name and options."""
    values = plain_container(node)
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
    node = plain_container(node)
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
    try:
        parse_claims(spec.report.claims)
    except ConfigError as exc:
        problems.append(str(exc))
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
    typed = {
        group: checked_dataclass(cls, get(group), group, problems) for group, cls in groups.items()
    }
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
