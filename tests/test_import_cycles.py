"""No import cycle in glmlab: the top-level imports of its modules (and of the built-in
plugins, ``glmlab.plugins``) form no cycle. An import inside ``if TYPE_CHECKING:`` does
not run and does not count. A function-level import (kept for start-up time, e.g. the
CLI's subcommands) must not dodge a cycle either: the graph with every import counted,
deferred ones included, has no cycle too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"glmlab": ROOT / "glmlab"}


def module_files() -> dict[str, Path]:
    """Every module of glmlab by dotted name (a package by its ``__init__``)."""
    out: dict[str, Path] = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((prefix, *parts))] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: in its body, and in module-level
    ``if`` / ``try`` blocks other than ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            pending += [*node.body, *node.orelse, *node.finalbody]
            pending += [s for h in node.handlers for s in h.body]
    return found


def imported_modules(
    module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The glmlab modules an import statement in ``module`` loads: the named module, the
    packages above it (their ``__init__`` runs first) and, for ``from pkg import name``,
    ``pkg.name`` when that is a module; not ``module``'s own packages, already loading."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
    out = set()
    for target in targets:
        parts = target.split(".")
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}  # not bare "glmlab"
    # The module's own packages are imported before it, whatever it imports.
    own = module.split(".")
    return (out & known) - {".".join(own[:i]) for i in range(1, len(own) + 1)}


def every_import(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of the module, in functions too, except under
    ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            pending += node.orelse
        else:
            pending += ast.iter_child_nodes(node)
    return found


def import_graph(imports=top_level_imports) -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = set().union(
            *(imported_modules(module, path, n, known) for n in imports(tree))
        )
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_glmlab_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "glmlab.train.trainer" in graph  # the walk found glmlab
    assert "glmlab.eval.suite" in graph["glmlab.assembly.run"]  # and resolved its imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_deferred_import_dodges_a_cycle() -> None:
    graph = import_graph(every_import)
    assert "glmlab.cli.inspect" in graph["glmlab.cli.main"]  # a deferred import, counted here
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle through a function-level import: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_and_the_imports_it_follows() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    source = (
        "import os\nfrom typing import TYPE_CHECKING\nfrom glmlab.io import x\n"
        "if TYPE_CHECKING:\n    from glmlab.runs.run import y\n"
        "try:\n    import glmlab.model.glm\nexcept ImportError:\n    pass\n"
        "def f():\n    from glmlab.cli.app import z\n"
    )
    known = {"glmlab.io", "glmlab.runs.run", "glmlab.model", "glmlab.model.glm", "glmlab.cli.app"}
    found = set().union(
        *(
            imported_modules("glmlab.m", Path("m.py"), n, known)
            for n in top_level_imports(ast.parse(source))
        )
    )
    assert found == {"glmlab.io", "glmlab.model", "glmlab.model.glm"}
    every = set().union(
        *(
            imported_modules("glmlab.m", Path("m.py"), n, known)
            for n in every_import(ast.parse(source))
        )
    )
    assert every == found | {"glmlab.cli.app"}  # the function's import; TYPE_CHECKING's not
