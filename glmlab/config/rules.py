"""The value rules of the config schema: :func:`rule` declares a field's bounds, choices or
pattern (:class:`Allowed`) and whether it is part of a run's identity, both kept as field
metadata; :func:`checks` attaches the rules that relate several fields of one dataclass;
:func:`check_values` checks a group's values against them and :func:`to_dataclass` builds a
group's dataclass (nested dataclasses and lists of them included), naming every problem at
once (:class:`ConfigError`) in the words a user types
(``train.max_steps=lots: must be an integer >= 1``)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

__all__ = [
    "IDENTITY",
    "Allowed",
    "Check",
    "ConfigError",
    "T",
    "allowed_text",
    "check_values",
    "checked_dataclass",
    "checks",
    "dotted",
    "field_problems",
    "plain_container",
    "rule",
    "show_value",
    "to_dataclass",
]


T = TypeVar("T")

IDENTITY = "identity"
"""The field metadata key marking whether a key is part of a run's identity (default: it is)."""

Check = Callable[[Any, str], list[str]]
"""A rule relating several fields: ``check(obj, group)`` -> one line per problem."""


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
    text: str | None = None  # how a message names what ``pattern`` (or the bounds) accept

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
        if self.text is not None:
            return self.text
        low = next(
            (f"{op} {b:g}" for op, b in ((">=", self.ge), (">", self.gt)) if b is not None), ""
        )
        high = next(
            (f"{op} {b:g}" for op, b in (("<=", self.le), ("<", self.lt)) if b is not None), ""
        )
        return " and ".join(x for x in (low, high) if x)


def rule(default: Any = dataclasses.MISSING, *, identity: bool = True, **allowed: Any) -> Any:
    """A dataclass field with a default and what it allows: ``rule(200, ge=1)``;
    ``identity=False``: a key that never changes a run's results (how it shows, where it
    reports), so neither its fingerprint nor its run directory's name holds it."""
    return field(default=default, metadata={"allowed": Allowed(**allowed), IDENTITY: identity})


def checks(*rules: Check) -> Callable[[type[T]], type[T]]:
    """Class decorator: the rules relating several fields of a schema dataclass, run by
    :func:`checked_dataclass` once every field has a valid value (``@checks(heads_divide_dim)``)."""

    def attach(cls: type[T]) -> type[T]:
        cls.__glmlab_checks__ = (*getattr(cls, "__glmlab_checks__", ()), *rules)  # type: ignore[attr-defined]
        return cls

    return attach


def dotted(group: str, name: str) -> str:
    """The key a user types for field ``name`` of ``group`` (the root's group is "")."""
    return f"{group}.{name}" if group else name


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
    if origin is list and args:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    return isinstance(value, origin)


def _type_name(kind: Any) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        named = [_type_name(a) for a in args if a is not type(None)]
        return ("null or " if type(None) in args else "") + " or ".join(named)
    origin = typing.get_origin(kind) or kind
    if origin is list:
        plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
        return "a list of " + (plural.get(args[0], _type_name(args[0])) if args else "values")
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


def field_problems(key: str, value: Any, kind: Any, allowed: Allowed | None) -> list[str]:
    """The problem with ``key=value`` for a field of type ``kind`` and rule ``allowed``
    (a one-item list), or none."""
    if isinstance(value, str) and value == MISSING:
        return [f"{key} is missing: must be {allowed_text(kind, allowed)}"]
    if not _type_ok(value, kind) or (allowed is not None and allowed.violated_by(value)):
        return [f"{key}={show_value(value)}: must be {allowed_text(kind, allowed)}"]
    return []


def check_values(obj: Any, group: str) -> list[str]:
    """One line per field of dataclass ``obj`` whose value has the wrong type or is out of
    what its :class:`Allowed` rule accepts (``train.max_steps=0: must be an integer >= 1``);
    when there is none, the problems its :func:`checks` rules find."""
    hints = typing.get_type_hints(type(obj))
    problems = []
    for f in dataclasses.fields(obj):
        key = dotted(group, f.name)
        problems += field_problems(
            key, getattr(obj, f.name), hints[f.name], f.metadata.get("allowed")
        )
    if not problems:
        for check in getattr(type(obj), "__glmlab_checks__", ()):
            problems += check(obj, group)
    return problems


def plain_container(node: Any) -> Any:
    """A config node as plain Python containers (resolved); anything else unchanged."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _element_dataclass(kind: Any) -> type | None:
    """``C`` for a field annotated ``list[C]`` with ``C`` a dataclass; None otherwise."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is list and args and dataclasses.is_dataclass(args[0]):
        return args[0]  # type: ignore[return-value]
    return None


def _nested(cls: type, values: dict[str, Any], group: str, problems: list[str]) -> dict[str, Any]:
    """``values`` with each nested dataclass (or list of them) of ``cls`` built and checked."""
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind, key = hints[f.name], dotted(group, f.name)
        if f.name not in values:
            continue
        if dataclasses.is_dataclass(kind):
            out[f.name] = checked_dataclass(kind, values[f.name], key, problems)  # type: ignore[arg-type]
        elif (element := _element_dataclass(kind)) is not None and isinstance(values[f.name], list):
            out[f.name] = [
                checked_dataclass(element, v, f"{key}[{i}]", problems)
                for i, v in enumerate(values[f.name])
            ]
    return out


def checked_dataclass(cls: type[T], node: Any, group: str, problems: list[str]) -> T | None:
    """``cls`` from a config node, its nested dataclasses too; its problems (unknown keys,
    types, rules) are appended to ``problems`` and None returned when there are any."""
    values = plain_container(node)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        problems.append(f"{group}={show_value(values)}: must be a mapping of {cls.__name__} keys")
        return None
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"the '{group}' config" if group else "the root config"
        problems.append(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(names)}")
        return None
    found: list[str] = []
    values = _nested(cls, values, group, found)
    if found:
        problems.extend(found)
        return None
    obj = cls(**values)
    found = check_values(obj, group)
    problems.extend(found)
    return None if found else obj


def to_dataclass(cls: type[T], node: DictConfig | dict | None, group: str) -> T:
    """Build ``cls`` from a config node; unknown keys, values of the wrong type or out of
    range and broken :func:`checks` rules raise :class:`ConfigError` (one line per problem,
    all of them at once)."""
    problems: list[str] = []
    obj = checked_dataclass(cls, node, group, problems)
    if obj is None:
        raise ConfigError("; ".join(problems))
    return obj
