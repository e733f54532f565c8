"""The public API, frozen: every name a third-party plugin package and its tests import
(the plugin contract in ``glmlab.plugin``, ``glmlab.structures``, the conformance kit
``glmlab.testing``, the sample builder, the model builder, ``glmlab.results``) is compared
with the checked-in list ``tests/fixtures/public_api.txt``, so that moving, renaming or
removing one fails here, saying how to record the change deliberately."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

LISTED = Path(__file__).parent / "fixtures" / "public_api.txt"

# The modules whose public names are the API: each module's ``__all__`` where it declares
# one, else every public name it defines at the top level (what it imports is not its API);
# ``module:name`` lists one name of a module that is otherwise not plugin-facing.
MODULES = [
    "glmlab",
    "glmlab.plugin.hookspecs",
    "glmlab.plugin.base",
    "glmlab.plugin.registry",
    "glmlab.plugin.errors",
    "glmlab.plugin.guards",
    "glmlab.plugin.helpers",
    "glmlab.structures",
    "glmlab.testing",
    "glmlab.testing.attention",
    "glmlab.testing.base",
    "glmlab.testing.mask_builders",
    "glmlab.testing.norm_layouts",
    "glmlab.testing.positional",
    "glmlab.testing.runs",
    "glmlab.testing.samplers",
    "glmlab.testing.samples",
    "glmlab.testing.syncs",
    "glmlab.testing.trackers",
    "glmlab.objective.sample",
    "glmlab.model.build",
    "glmlab.config.spec:PluginChoice",  # a plugin choice with options, for build_model
    "glmlab.results",
]

HOW_TO_UPDATE = (
    "If the change is deliberate, record it: regenerate the list with\n"
    "    python -m tests.test_public_api > tests/fixtures/public_api.txt\n"
    "add a row to docs/PLUGINS.md's migration table for every name that moved or was "
    "removed, and a line to CHANGELOG.md. Otherwise restore the name where it was."
)


def defined_names(module_name: str) -> list[str]:
    """The public names of ``module_name`` (see :data:`MODULES`), each checked to exist."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        tree = ast.parse(inspect.getsource(module))
        names = []
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.append(node.name)
            elif isinstance(node, ast.Assign):
                names += [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.append(node.target.id)
    public = sorted({n for n in names if not n.startswith("_")} | ({"__version__"} & set(names)))
    missing = [n for n in public if not hasattr(module, n)]
    assert not missing, f"{module_name} lists names it does not have: {missing}"
    return public


def current_api() -> list[str]:
    api = []
    for entry in MODULES:
        module, _, only = entry.partition(":")
        names = defined_names(module)
        assert not only or only in names, f"{module} has no public {only}"
        api += [f"{module}.{name}" for name in names if not only or name == only]
    return api


def test_the_public_api_is_the_checked_in_list() -> None:
    listed = [
        line.strip()
        for line in LISTED.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    now = current_api()
    gone = sorted(set(listed) - set(now))
    new = sorted(set(now) - set(listed))
    problems = []
    if gone:
        problems.append("gone (moved, renamed, removed or no longer public): " + ", ".join(gone))
    if new:
        problems.append("new, not in the list: " + ", ".join(new))
    assert not problems, (
        f"the public API differs from {LISTED.name}; " + "; ".join(problems) + ".\n" + HOW_TO_UPDATE
    )


if __name__ == "__main__":  # python -m tests.test_public_api > tests/fixtures/public_api.txt
    print(
        "# glmlab's public API: the names third-party plugins and their tests import.\n"
        "# Checked by tests/test_public_api.py; regenerate with\n"
        "#     python -m tests.test_public_api > tests/fixtures/public_api.txt\n"
        "# only for a deliberate change (docs/PLUGINS.md's migration table, CHANGELOG.md)."
    )
    print("\n".join(current_api()))
