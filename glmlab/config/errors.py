"""One line for a config that Hydra could not compose: the schema's type errors
(``train.max_steps=lots``), unknown keys and missing options, in the words of
:func:`glmlab.config.rules.check_values` (``train.max_steps=lots: must be an integer >= 1``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import typing
from collections.abc import Iterator
from typing import Any

from hydra.errors import MissingConfigException, OverrideParseException

from glmlab.config.ladder import LadderConfig
from glmlab.config.rules import Allowed, ConfigError, allowed_text, show_value
from glmlab.config.schema import SCHEMA, GLMLabConfig

# Lines of OmegaConf's messages that locate the node; the key is named in the line itself.
_LOCATION = re.compile(r"^\s*(full_key|reference_type|object_type)[:=]")
# The typed nodes a composed config has: the run's root and the ladder sweeper's settings.
_ROOTS = {"hydra.sweeper.ladder.": LadderConfig, "": GLMLabConfig}


def schema_field(path: str) -> tuple[Any, Allowed | None, list[str]] | None:
    """The annotated type and rule of the schema field at dotted ``path``
    (``train.max_steps``, ``hydra.sweeper.ladder.rungs[0].dim``) and the keys of its
    parent; None outside the dataclasses."""
    prefix = next(p for p in _ROOTS if path.startswith(p))
    cls: Any = _ROOTS[prefix]
    parts = re.sub(r"\[\d+\]", ".[]", path[len(prefix) :]).split(".")
    for i, part in enumerate(parts):
        if part == "[]":  # a list's element: its type
            cls = (typing.get_args(cls) or (Any,))[0]
            if i == len(parts) - 1:
                return cls, None, []
            continue
        if not dataclasses.is_dataclass(cls):
            return None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return (None, None, sorted(fields)) if i == len(parts) - 1 else None
        hint = typing.get_type_hints(cls)[part]
        if i == len(parts) - 1:
            return hint, fields[part].metadata.get("allowed"), sorted(fields)
        cls = hint
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def _flat(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not _LOCATION.match(ln)]
    return " ".join(lines)


def composition_error_line(exc: BaseException) -> str:
    """What is wrong with the command line or a config file, in one line."""
    chain = _causes(exc)
    refused = next((e for e in chain if isinstance(e, ConfigError)), None)
    if refused is not None:  # glmlab's own check (a resolver's): its message says it all
        return str(refused)
    unparsed = next((e for e in chain if isinstance(e, OverrideParseException)), None)
    if unparsed is not None:
        return override_parse_line(unparsed.override, unparsed.message)
    located = next((e for e in chain if getattr(e, "full_key", None)), None)
    key = getattr(located, "full_key", None)
    text = " ".join(_flat(e) for e in chain)
    if key:
        found = schema_field(key)
        override = re.search(rf"override '?{re.escape(key)}=([^'\s]*)", text)
        value = re.search(r"Value '([^']*)'", text)
        shown = (override and override.group(1)) or (value.group(1) if value else None)
        owner = getattr(located, "object_type", None)
        if "." not in key and dataclasses.is_dataclass(owner) and owner is not GLMLabConfig:
            # a key of a node given whole (rungs=[{...}]): OmegaConf names it alone
            where = re.search(r"override '([^']+)'", text)
            valid = sorted(f.name for f in dataclasses.fields(owner))
            return (
                f"{where.group(1) if where else key}: no such key '{key}' in {owner.__name__}; "
                f"valid keys: {', '.join(valid)}"
            )
        if found is not None and found[0] is None:
            parent = key.rpartition(".")[0] or "the root"
            return f"{key}: no such key in '{parent}'; valid keys: {', '.join(found[2])}"
        if found is not None and shown is not None:
            kind, allowed, _ = found
            return f"{key}={show_value(shown)}: must be {allowed_text(kind, allowed)}"
    missing = next((e for e in chain if isinstance(e, MissingConfigException)), None)
    if missing is not None and missing.missing_cfg_file and missing.options:
        group, _, option = missing.missing_cfg_file.rpartition("/")
        options = ", ".join(o for o in missing.options if o != SCHEMA)
        return (
            f"{group}={option}: no such {group}; choose one of {options} "
            f"(or set an option of the selected one: {group}.KEY=VALUE)"
        )
    return _flat_chain(chain)


def override_parse_line(override: str, message: str) -> str:
    """One line for an override Hydra's grammar refuses: the override, Hydra's reason and,
    for an unquoted ``=`` in the value (``train.lr=1e-3=2``), how to quote it."""
    reason = message.split("\n")[0].strip()  # Hydra's next line is a link to its grammar
    key, eq, value = override.partition("=")
    if eq and "=" in value:
        return (
            f"override '{override}': Hydra cannot parse it ({reason}); a value holding '=' "
            f"must be quoted, as '{key}=\"{value}\"' on the command line"
        )
    return (
        f"override '{override}': Hydra cannot parse it ({reason}); see "
        "https://hydra.cc/docs/advanced/override_grammar/basic"
    )


def _flat_chain(chain: list[BaseException]) -> str:
    seen: list[str] = []
    for e in chain:
        line = _flat(e)
        if line and line not in seen:
            seen.append(line)
    return "; ".join(seen)


@contextlib.contextmanager
def one_line_config_errors() -> Iterator[None]:
    """Around the Hydra app: a config Hydra cannot compose exits with one line
    (``glmlab: config error: ...``) instead of Hydra's multi-line report.
    ``HYDRA_FULL_ERROR=1`` keeps Hydra's full trace."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing; we report
    try:
        yield
    except (HydraException, OmegaConfBaseException) as exc:
        raise SystemExit(f"glmlab: config error: {composition_error_line(exc)}") from None
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
