"""The package's shape, enforced: the import-linter contracts in pyproject.toml
(``[tool.importlinter]``: the layers from the commands down to the plugin contract, no cycle
between sibling packages or modules, built-in plugins on the plugin contract only) hold,
function-level imports included; and no module of glmlab is over 400 lines."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 kept, 0 broken" in out


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
