"""The value rules of the config schema: :func:`rule` declares a field's bounds, choices or
pattern (:class:`Allowed`, kept as field metadata), :func:`check_values` checks a group's
values against them and :func:`to_dataclass` builds a group's dataclass, naming every
problem at once (:class:`ConfigError`) in the words a user types
(``train.max_steps=lots: must be an integer >= 1``)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

__all__ = [
    "Allowed",
    "ConfigError",
    "T",
    "allowed_text",
    "check_values",
    "checked_dataclass",
    "plain_container",
    "rule",
    "show_value",
    "to_dataclass",
]


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


def plain_container(node: Any) -> Any:
    """A config node as plain Python containers (resolved); anything else unchanged."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def checked_dataclass(cls: type[T], node: Any, group: str, problems: list[str]) -> T | None:
    """``cls`` from a config node; its problems (unknown keys, types, rules) are appended
    to ``problems`` and None returned when there are any."""
    values = plain_container(node)
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
    obj = checked_dataclass(cls, node, group, problems)
    if obj is None:
        raise ConfigError("; ".join(problems))
    return obj
