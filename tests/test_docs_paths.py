"""Every file and module the project's text names exists: a ``glmlab/...`` path in a
comment, docstring, config, script or document, and a module (or a name at its top level)
in a Sphinx role of a docstring (``:mod:`glmlab.runs.layout```,
``:func:`glmlab.objective.sample.build_glm_sample```, ...). Only
CHANGELOG.md and a migration table (a table row under a heading that says "Migrat...")
may name what no longer exists: they name it as moved or removed on purpose."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("glmlab", "conf", "docs", "tests", "benchmarks", "scripts", "plugins", ".ci")
TOP_FILES = ("README.md", "pyproject.toml")
SKIPPED_DIRS = {"__pycache__", ".venv", ".cache", "build", "dist"}
PATH = re.compile(r"(?<![\w/.-])glmlab/[\w/.*-]*")
ROLE = re.compile(
    r":(?:mod|func|class|meth|attr|data|exc|obj):`~?((?:glmlab|hydra_plugins)(?:\.\w+)+)`"
)
NAMESPACE = "hydra_plugins"  # Hydra's plugin package: folders of that name under glmlab/


def _text_files() -> Iterator[Path]:
    for top in TOP_FILES:
        yield ROOT / top
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            parts = path.relative_to(ROOT).parts
            skipped = any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts)
            if path.is_file() and not skipped and path.name != "CHANGELOG.md":
                yield path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, less a markdown migration table's rows."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # an image, a binary fixture
        return
    migration = False
    for n, line in enumerate(text.splitlines(), 1):
        if path.suffix == ".md" and line.startswith("#"):
            migration = "migrat" in line.lower()
        if not (migration and line.lstrip().startswith("|")):
            yield n, line


def _exists(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def test_every_glmlab_path_named_exists() -> None:
    missing = [
        f"{path.relative_to(ROOT)}:{n}: {ref}"
        for path in _text_files()
        for n, line in _lines(path)
        for ref in (m.rstrip(".,:;-") for m in PATH.findall(line))
        if not _exists(ref)
    ]
    assert not missing, "these name files that do not exist (fix the path):\n" + "\n".join(missing)


def _module_file(module: str) -> Path | None:
    """The source file of ``module`` in this checkout, or None."""
    parts = module.split(".")
    if parts[0] == NAMESPACE:
        roots = [p for p in (ROOT / "glmlab").rglob(NAMESPACE) if p.is_dir()]
        parts = parts[1:]
    else:
        roots = [ROOT]
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _defined(body: list[ast.stmt]) -> set[str]:
    """The names a module or class body binds, through if/try/with blocks."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    names |= _defined(
                        child.body if isinstance(child, ast.ExceptHandler) else [child]
                    )
    return names


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _resolves(ref: str, role_is_module: bool) -> bool:
    parts = ref.split(".")
    for i in range(len(parts), 0, -1):
        if (source := _module_file(".".join(parts[:i]))) is not None:
            break
    else:
        return False
    rest = parts[i:]
    if not rest:
        return True
    if role_is_module:
        return False
    tree = _tree(source)
    if rest[0] not in _defined(tree.body):
        return False
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if len(rest) > 1 and rest[0] in classes:
        return rest[1] in _defined(classes[rest[0]].body)
    return True


def test_every_module_a_docstring_role_names_exists() -> None:
    missing = [
        f"{path.relative_to(ROOT)}:{n}: {m.group(0)}"
        for path in _text_files()
        if path.suffix == ".py"
        for n, line in _lines(path)
        for m in ROLE.finditer(line)
        if not _resolves(m.group(1), m.group(0).startswith(":mod:"))
    ]
    assert not missing, "these roles name what does not exist (fix the name):\n" + "\n".join(
        missing
    )
