"""The ``installed_docs`` corpus (glmlab/data/docstrings.py): docstrings of installed
distributions read from their sources, tests skipped, each distribution's version in the
corpus fingerprint, parsed once and cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from glmlab.data import docstrings
from glmlab.data.corpus import load_corpus

LONG = "explains at length what this function computes and why " * 5


def _fake_distribution(root: Path, name: str, version: str, modules: dict[str, str]) -> None:
    """An installed distribution under ``root`` (a sys.path entry): sources + dist-info."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    for rel, text in modules.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    records = [*modules, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{r},,\n" for r in records))


def _module(doc: str) -> str:
    return f'"""{doc}"""\n\n\ndef f():\n    """{doc} (f)"""\n'


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def test_reads_docstrings_of_a_distribution_skipping_tests(site):
    _fake_distribution(
        site,
        "fakepkg",
        "1.0",
        {
            "fakepkg/__init__.py": _module("Package docs " + LONG),
            "fakepkg/core.py": _module("Core docs " + LONG),
            "fakepkg/tests/test_core.py": _module("Test docs " + LONG),
            "fakepkg/short.py": '"""too short"""\n',
        },
    )
    docs, versions = docstrings.read_installed_docs(["fakepkg"], min_chars=200, stdlib=False)
    assert versions == {"fakepkg": "1.0"}
    assert [d.split()[0] for d in docs] == ["Package", "Package", "Core", "Core"]
    assert not any(d.startswith("Test docs") for d in docs)


def test_each_docstring_kept_once(site):
    same = _module("Shared docs " + LONG)
    _fake_distribution(site, "fakepkg", "1.0", {"fakepkg/a.py": same, "fakepkg/b.py": same})
    docs, _ = docstrings.read_installed_docs(["fakepkg"], min_chars=200, stdlib=False)
    assert len(docs) == 2 == len(set(docs))


def test_the_version_is_part_of_the_corpus_fingerprint(tmp_path, monkeypatch):
    modules = {"fakepkg/__init__.py": _module("Package docs " + LONG)}
    prints = {}
    for version in ("1.0", "2.0"):
        root = tmp_path / version
        _fake_distribution(root, "fakepkg", version, modules)
        with monkeypatch.context() as m:
            m.syspath_prepend(str(root))
            corpus = load_corpus("installed_docs", packages=["fakepkg"], stdlib=False)
        assert corpus.sources == {"fakepkg": version}
        prints[version] = corpus.fingerprint
    assert prints["1.0"] != prints["2.0"]  # same documents, another install


def test_parsed_once_then_read_from_the_cache(site, monkeypatch):
    _fake_distribution(site, "fakepkg", "1.0", {"fakepkg/m.py": _module("Cached " + LONG)})
    first, _ = docstrings.read_installed_docs(["fakepkg"], stdlib=False)

    def no_parse(path):
        raise AssertionError(f"parsed {path} again")

    monkeypatch.setattr(docstrings, "file_docstrings", no_parse)
    again, _ = docstrings.read_installed_docs(["fakepkg"], stdlib=False)
    assert again == first


def test_a_distribution_not_installed_is_one_clear_error(site):
    with pytest.raises(
        ValueError, match=r"'no-such-dist' is not installed.*corpus_options.packages"
    ):
        load_corpus("installed_docs", packages=["no-such-dist"])
    with pytest.raises(ValueError, match="must be a list of distribution names"):
        load_corpus("installed_docs", packages="torch")


def test_the_default_set_is_glmlabs_requirement_closure():
    """torch and what it pulls in (sympy), numpy, scipy, statsmodels (and its pandas): what
    a fresh install has; the optional extras (pyarrow via glmlab[results], lm-eval via
    glmlab[harness], mlflow) are not part of it."""
    names = docstrings.requirement_closure()
    assert {"torch", "numpy", "scipy", "sympy", "hydra-core", "statsmodels"} <= set(names)
    assert not {"pyarrow", "lm-eval", "mlflow-skinny", "glmlab"} & set(names)
    assert names == sorted(names)


@pytest.mark.slow
def test_the_real_corpus_is_far_larger_than_stdlib_docs():
    """Built from this machine's install (cached for the session): its training split
    holds the stdlib corpus's documents and some 15 times more characters."""
    big = load_corpus("installed_docs")
    small = load_corpus("stdlib_docs")
    assert big.n_chars > 15 * small.n_chars
    assert set(small.train) <= set(big.train) and {"torch", "numpy"} <= set(big.sources)
