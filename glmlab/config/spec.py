"""From a composed config to a :class:`RunSpec`, the typed, checked config of one run:
:func:`parse_config` checks every group's values and the rules that relate several fields
before any data is loaded, naming every problem at once. :class:`RunSpec` has one field per
field of the root schema (:class:`~glmlab.config.schema.GLMLabConfig`, derived from it: a
key added there is here with no other edit); plugin groups become :class:`PluginChoice`
tuples, the tracker node ``{name: options}``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from omegaconf import MISSING, DictConfig, OmegaConf

from glmlab.config.claims import parse_claims
from glmlab.config.rules import ConfigError, checked_dataclass, plain_container, show_value
from glmlab.config.schema import GROUP, GLMLabConfig

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


class _RunSpecBase:
    """What a :class:`RunSpec` adds to its fields."""

    @property
    def max_positions(self) -> int:
        return int(self.data.seq_len)  # type: ignore[attr-defined]


# How a root field marked as a group (schema.GROUP) is parsed, and its type in the RunSpec.
_PARSED: dict[str, tuple[Callable[[Any, str], Any], Any]] = {
    "plugin": (lambda node, group: plugin_choice(node or {}, group), PluginChoice),
    "trackers": (lambda node, group: tracker_choices(node), dict[str, dict[str, Any]]),
}


def _run_spec_class(root: type) -> type:
    """A dataclass with one field per field of ``root``, typed as :func:`parse_config`
    returns it: checked dataclasses, :class:`PluginChoice` per plugin group, the trackers."""
    hints = typing.get_type_hints(root)
    fields = []
    for f in dataclasses.fields(root):  # type: ignore[arg-type]
        parsed = _PARSED.get(f.metadata.get(GROUP))
        fields.append((f.name, parsed[1] if parsed else hints[f.name]))
    cls = dataclasses.make_dataclass("RunSpec", fields, bases=(_RunSpecBase,))
    cls.__module__ = __name__
    cls.__doc__ = (
        "The typed, checked config of one run (:func:`parse_config`): one field per key "
        "of the root schema (glmlab/config/schema.py, GLMLabConfig)."
    )
    return cls


RunSpec: Any = _run_spec_class(GLMLabConfig)


def _cross_field_problems(spec: Any) -> list[str]:
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


def parse_config(cfg: DictConfig | dict[str, Any]) -> Any:
    """Check the composed config (or one read back from a run directory) into a
    :class:`RunSpec`: unknown keys, values of the wrong type or out of range (the rules on
    the schema's dataclasses) and the cross-field rules are one :class:`ConfigError`, one
    ``key=value: what is allowed`` per problem, before anything is loaded."""
    problems: list[str] = []
    if "hydra" in cfg:  # composed with return_hydra_config: Hydra's own node is not the run's
        cfg = (
            OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            if isinstance(cfg, DictConfig)
            else {k: v for k, v in cfg.items() if k != "hydra"}
        )
    values = plain_container(cfg)
    if not isinstance(values, dict):
        raise ConfigError(f"the config is {show_value(values)}: must be a mapping of keys")
    values, parsed = dict(values), {}
    for f in dataclasses.fields(GLMLabConfig):
        how = _PARSED.get(f.metadata.get(GROUP))
        if how is not None:
            try:
                parsed[f.name] = how[0](values.pop(f.name, None), f.name)
            except ConfigError as exc:
                problems.append(str(exc))
    root = checked_dataclass(GLMLabConfig, values, "", problems)
    if problems or root is None:
        raise ConfigError("; ".join(problems))
    typed = {f.name: getattr(root, f.name) for f in dataclasses.fields(GLMLabConfig)}
    spec = RunSpec(**{**typed, **parsed})
    problems = _cross_field_problems(spec)
    if problems:
        raise ConfigError("; ".join(problems))
    return spec
