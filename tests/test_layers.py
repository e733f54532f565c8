"""The package's shape, enforced: the import-linter contracts in pyproject.toml
(``[tool.importlinter]``: glmlab's layers from the commands down to files and plain data
types, Hydra's plugin modules beside the packages whose work they do, the run-directory
side free of the model side, no cycle between sibling packages or modules, built-in
plugins on the plugin contract only) hold, function-level imports included; every module
under glmlab/ sits in a layer; and no module of glmlab is over 400 lines."""

from __future__ import annotations

import logging
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

from glmlab.cluster.launcher import PLUGIN_PATH

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
NAMESPACE = "hydra_plugins"  # Hydra's plugin package: its folders are root packages of their own


def _options() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _layers(contract: dict) -> list[list[str]]:
    """A layers contract's layers, top first, as absolute module names."""
    prefixes = [f"{c}." for c in contract.get("containers", [])] or [""]
    layers = []
    for layer in contract["layers"]:
        tails = [t.strip().strip("()") for t in layer.replace(":", "|").split("|")]
        layers.append([p + t for p in prefixes for t in tails])
    return layers


def _module_name(path: Path) -> str:
    """The module a file under glmlab/ is imported as (Hydra's plugin folders are
    ``hydra_plugins.*``, wherever they are under glmlab/)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if NAMESPACE in parts:
        parts = parts[parts.index(NAMESPACE) :]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@pytest.fixture
def hydra_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder glmlab adds to sys.path at run time for Hydra's launcher and sweeper
    plugins (:func:`glmlab.cluster.launcher.install`): the contracts need it too."""
    monkeypatch.setattr(sys, "path", [*sys.path, str(PLUGIN_PATH)])


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """lint-imports configures logging with ``dictConfig``, which disables every logger
    that exists (glmlab's too): the later tests of the session need them back."""
    loggers = [
        v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)
    ]
    disabled = [logger.disabled for logger in loggers]
    yield
    for logger, was in zip(loggers, disabled, strict=True):
        logger.disabled = was


@pytest.mark.usefixtures("hydra_path", "logging_kept")
def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    n = len(_options()["contracts"])
    assert f"{n} kept, 0 broken" in out


@pytest.mark.usefixtures("hydra_path")
def test_every_module_sits_in_a_layer() -> None:
    """Each module under glmlab/, Hydra's plugin modules included, is in a layer of a
    layers contract and in the graph the contracts check (no folder without __init__.py
    hides one); the root package, the one container, imports only the plugin contract's
    layer or below (every layer may import it)."""
    options = _options()
    contracts = [c for c in options["contracts"] if c["type"] == "layers"]
    layered = {m for c in contracts for layer in _layers(c) for m in layer}
    modules = {_module_name(p) for p in (ROOT / "glmlab").rglob("*.py")}
    graph = grimp.build_graph(*options["root_packages"], exclude_type_checking_imports=True)
    unseen = sorted(modules - graph.modules)
    assert not unseen, f"the contracts do not see {unseen}: add __init__.py or a root package"
    containers = {c for contract in contracts for c in contract.get("containers", [])}
    outside = sorted(
        m for m in modules - containers if not any(m == t or m.startswith(f"{t}.") for t in layered)
    )
    assert not outside, f"put these in a layer in pyproject.toml [tool.importlinter]: {outside}"
    (main,) = [_layers(c) for c in contracts if c.get("containers") == ["glmlab"]]
    plugin_layer = next(i for i, layer in enumerate(main) if "glmlab.plugin" in layer)
    low = [m for layer in main[plugin_layer:] for m in layer]
    imported = graph.find_modules_directly_imported_by("glmlab")
    high = sorted(m for m in imported if not any(m == t or m.startswith(f"{t}.") for t in low))
    assert not high, f"glmlab/__init__.py imports {high}, above the plugin contract's layer"


def test_the_contracts_see_function_level_imports() -> None:
    """A deferred import (the CLI loads a subcommand's module when it runs) is an import
    for the contracts too: a cycle or an upward import cannot hide in a function."""
    graph = grimp.build_graph("glmlab", exclude_type_checking_imports=True)
    details = graph.get_import_details(importer="glmlab.cli.main", imported="glmlab.cli.inspect")
    source = (ROOT / "glmlab/cli/main.py").read_text().splitlines()
    assert details and all(source[d["line_number"] - 1].startswith("    ") for d in details)


def test_no_module_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "glmlab").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by job (at most {MAX_LINES} lines each): {long}"
