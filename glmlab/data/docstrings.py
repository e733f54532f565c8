"""The embedded corpora: docstrings read from Python sources already on this machine.

``stdlib_docs``
    The docstrings of the running interpreter's standard library.
``installed_docs``
    The standard library's docstrings followed by those of the Python distributions that
    glmlab's own install requires (torch, numpy, scipy, sympy, matplotlib, networkx, ...:
    the closure of glmlab's core requirements, extras left out), so that a fresh
    ``pip install -e .`` has the same corpus with no download. About 25M characters with
    torch 2.13 (docs/DATA.md), some 30 times ``stdlib_docs``.

Sources are parsed with :mod:`ast`, never imported; test folders are skipped; each
docstring is kept once. The parse is cached under the cache root, keyed by everything that
changes its result: the Python version, and for ``installed_docs`` every distribution's
name, version and location, so that another install is another corpus (its fingerprint,
:class:`glmlab.data.corpus.Corpus`, hashes the documents as well).
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import logging
import os
import re
import sys
import sysconfig
import warnings
from collections.abc import Iterable
from pathlib import Path

from glmlab.data.cache import cache_dir, cache_key
from glmlab.io import write_text_atomic

__all__ = [
    "file_docstrings",
    "installed_distributions",
    "parse_installed_docs",
    "read_installed_docs",
    "read_stdlib_docs",
    "requirement_closure",
]

log = logging.getLogger("glmlab")

# Bump when the extraction rules change, so stale caches are not reused.
_STDLIB_FORMAT = 1
_INSTALLED_FORMAT = 1
# Folders that hold no library documentation (tests, bundled third-party trees, tools).
_SKIP_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "testing",
        "idlelib",
        "lib2to3",
        "__pycache__",
    }
)
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def source_files(root: Path) -> list[Path]:
    """The ``.py`` files under ``root`` outside skipped folders, in path order."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Prune in place so os.walk does not descend into skipped trees.
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def file_docstrings(path: Path) -> list[tuple[int, str]]:
    """``(line, docstring)`` for the module and every class/function in one source file,
    in line order; ``[]`` for a file that cannot be read or parsed."""
    try:
        source = path.read_bytes()
        with warnings.catch_warnings():
            # Old escape sequences in some sources trigger Deprecation/SyntaxWarnings.
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                out.append((getattr(node, "lineno", 0), doc))
    out.sort(key=lambda t: t[0])  # ast.walk is breadth-first; the contract is line order
    return out


def _collect(files: Iterable[Path], min_chars: int, seen: set[str], docs: list[str]) -> None:
    for path in files:
        for _, doc in file_docstrings(path):
            if len(doc) >= min_chars and doc not in seen:
                seen.add(doc)
                docs.append(doc)


def _cached(name: str, key: str, parse: callable) -> list[str]:  # type: ignore[valid-type]
    path = cache_dir() / "corpora" / f"{name}-{key}.json"
    try:
        docs = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(docs, list):
            return docs
    except (OSError, ValueError):
        pass
    docs = parse()
    write_text_atomic(path, json.dumps(docs, ensure_ascii=False))
    return docs


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def read_stdlib_docs(min_chars: int = 200) -> list[str]:
    """The standard library's docstrings of at least ``min_chars`` characters (cached)."""
    root = _stdlib_root()
    key = cache_key("stdlib_docs", _STDLIB_FORMAT, sys.version, str(root), min_chars)

    def parse() -> list[str]:
        docs: list[str] = []
        _collect(source_files(root), min_chars, set(), docs)
        if not docs:
            raise ValueError(
                f"stdlib_docs found no docstrings of >= {min_chars} chars under {root}; "
                "is the standard library shipped as source (.py) on this install?"
            )
        return docs

    return _cached("stdlib_docs", key, parse)


# ------------------------------------------------------------------------ installed_docs


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    """The distributions ``dist`` requires unconditionally (no extra, markers that hold)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            match = _NAME.match(line)
            if match and ";" not in line:
                names.append(_canonical(match.group(1)))
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        names.append(_canonical(req.name))
    return names


def requirement_closure(root: str = "glmlab") -> list[str]:
    """Every installed distribution ``root`` requires, directly or not (extras left out),
    sorted by canonical name; ``root`` itself is not included."""
    seen: set[str] = set()
    todo = [_canonical(root)]
    while todo:
        try:
            dist = metadata.distribution(todo.pop())
        except metadata.PackageNotFoundError:
            continue
        for name in _requirement_names(dist):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    installed = []
    for name in sorted(seen):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        installed.append(name)
    return installed


def installed_distributions(names: Iterable[str]) -> list[tuple[str, str, list[Path]]]:
    """``(name, version, its .py files outside test folders)`` of each installed
    distribution in ``names`` (a name that is not installed is a ValueError)."""
    out = []
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ValueError(
                f"installed_docs: distribution {name!r} is not installed; list installed ones "
                "in data.corpus_options.packages, or leave it null for glmlab's requirements"
            ) from None
        files = []
        for entry in dist.files or []:
            parts = Path(str(entry)).parts
            if not str(entry).endswith(".py") or any(p in _SKIP_DIRS for p in parts[:-1]):
                continue
            files.append(Path(str(dist.locate_file(entry))))
        files.sort(key=lambda p: p.as_posix())
        out.append((_canonical(name), dist.version, files))
    return out


def parse_installed_docs(
    distributions: list[tuple[str, str, list[Path]]], min_chars: int, stdlib: bool
) -> list[str]:
    """The docstrings (standard library first if ``stdlib``, then each distribution in
    order) of at least ``min_chars`` characters, each kept once."""
    seen: set[str] = set()
    docs: list[str] = []
    if stdlib:
        for doc in read_stdlib_docs(min_chars):
            seen.add(doc)
            docs.append(doc)
    for _, _, files in distributions:
        _collect(files, min_chars, seen, docs)
    return docs


def read_installed_docs(
    packages: list[str] | None, min_chars: int = 200, stdlib: bool = True
) -> tuple[list[str], dict[str, str]]:
    """``installed_docs``' documents and the ``{distribution: version}`` they came from
    (``packages``: distribution names; None: glmlab's requirement closure). Cached."""
    names = requirement_closure() if packages is None else [_canonical(p) for p in packages]
    dists = installed_distributions(names)
    versions = {name: version for name, version, _ in dists}
    located = [
        (name, version, str(files[0].parent) if files else "") for name, version, files in dists
    ]
    key = cache_key(
        "installed_docs",
        _INSTALLED_FORMAT,
        sys.version,
        str(_stdlib_root()),
        stdlib,
        min_chars,
        located,
    )

    def parse() -> list[str]:
        log.info(
            "installed_docs: reading the docstrings of %d installed distributions (once; cached)",
            len(dists),
        )
        docs = parse_installed_docs(dists, min_chars, stdlib)
        if not docs:
            raise ValueError(
                f"installed_docs found no docstrings of >= {min_chars} chars in "
                f"{', '.join(versions) or 'no distributions'}"
            )
        return docs

    return _cached("installed_docs", key, parse), versions
