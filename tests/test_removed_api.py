"""glmlab 0.2.0 removed the compatibility layer of 0.1: the old import paths, hook API 1,
the adaptation of duck-typed plugins and ``AttentionLayout.host`` are gone, with a plain
ImportError (or a message naming the migration table), not a shim. docs/PLUGINS.md's
migration table is checked against the code: every name it moves is importable from its
new home and no longer from its old one."""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path

import pytest
import torch

from glmlab.plugin import base, hookspecs
from glmlab.plugin.errors import IncompatiblePluginError
from glmlab.plugin.registry import PluginRegistry
from glmlab.structures import AttentionLayout
from tests.test_registry import SAMPLER_PLUGIN, make_distribution

PLUGINS_MD = Path(__file__).resolve().parents[1] / "docs" / "PLUGINS.md"

# The forwarding modules and the compat module of 0.1, removed in 0.2.0.
REMOVED_MODULES = [
    "glmlab.hookspecs",
    "glmlab.registry",
    "glmlab.plugin_base",
    "glmlab.plugin_helpers",
    "glmlab.interfaces",
    "glmlab.trackers",
    "glmlab.plugin.compat",
]


@pytest.mark.parametrize("old", REMOVED_MODULES)
def test_a_removed_module_does_not_import(old: str) -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_removed_names_are_gone() -> None:
    with pytest.raises(ImportError):
        from glmlab.objective import build_glm_sample  # noqa: F401 (0.1's path)
    for name in ("adapt", "PluginShapeError"):
        assert not hasattr(base, name), name
    ids = torch.zeros(1, 4, dtype=torch.int32)
    layout = AttentionLayout(1, 4, [(0, 0, 4, 2)], ids, ids + 2)
    assert not hasattr(layout, "host") and layout.host_prepared == {}


def test_a_plugin_declaring_api_1_is_refused_naming_the_migration_table(
    tmp_path, monkeypatch
) -> None:
    assert hookspecs.SUPPORTED_API_VERSIONS == {hookspecs.API_VERSION} == {2}
    src = "GLMLAB_API_VERSION = 1\n" + SAMPLER_PLUGIN.replace("{name}", "old_api")
    make_distribution(tmp_path, monkeypatch, "glmlab-old-api", {"old_api_plugin": src})
    with pytest.raises(IncompatiblePluginError, match="Migrating from glmlab 0.1"):
        PluginRegistry().load_entry_points()


def migration_rows() -> list[tuple[str, list[str], str]]:
    """(old module, names, new module) of each row of PLUGINS.md's migration table:
    ``| `old.module`: `a`, `b` | `new.module` |``, or a renamed name
    ``| `old.module`: `a` | `new.module`: `b` |`` (then the new name)."""
    text = PLUGINS_MD.read_text()
    section = text.split("### Migrating from glmlab 0.1", 1)[1].split("\n### ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([\w.]+)`: (.+?) \| `([\w.]+)`(?:: `(\w+)`)? \|", line.strip())
        if match:
            names = re.findall(r"`(\w+)`", match.group(2))
            rows.append(
                (match.group(1), [match.group(4)] if match.group(4) else names, match.group(3))
            )
    return rows


def test_the_migration_table_is_true_to_the_code() -> None:
    rows = migration_rows()
    assert len(rows) > 30, "the migration table was not found in docs/PLUGINS.md"
    assert ("glmlab.objective", ["build_glm_sample"], "glmlab.objective.sample") in [
        (old, [n for n in names if n == "build_glm_sample"], new) for old, names, new in rows
    ]
    stale = []
    for old, names, new in rows:
        module = importlib.import_module(new)
        stale += [f"{new}.{n} is missing" for n in names if not hasattr(module, n)]
        try:
            before = importlib.import_module(old)
        except ModuleNotFoundError:
            continue  # the old module is gone
        if hasattr(before, "__path__"):  # the old module is a package now: no names left
            stale += [
                f"{old}.{n} still exists"
                for n in names
                if not isinstance(getattr(before, n, None), types.ModuleType | None)
            ]
    assert not stale, "docs/PLUGINS.md's migration table disagrees with the code: " + "; ".join(
        stale
    )
