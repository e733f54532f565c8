"""Text corpora, selected by name.

``load_corpus(name, **options)`` returns a :class:`Corpus`: lists of training and
validation documents plus a fingerprint (short sha256 over the name, the options and the
contents) that downstream caches (tokenizer, tokenized examples) use as their key.

Known corpora:

``stdlib_docs`` (default; needs nothing but a Python install)
    The docstrings of the running interpreter's standard library, read with :mod:`ast`
    from the ``.py`` sources (never imported). Options: ``min_chars`` (200),
    ``validation_fraction`` (0.05).
``installed_docs`` (needs nothing but glmlab's own install)
    ``stdlib_docs`` followed by the docstrings of the distributions glmlab requires
    (torch, numpy, scipy, sympy, ...; glmlab/data/docstrings.py), about 30 times larger.
    Options: ``packages`` (null: glmlab's requirement closure; or a list of installed
    distribution names), ``stdlib`` (true), ``min_chars`` (200), ``validation_fraction``.
    ``Corpus.sources`` holds each distribution's version, and the fingerprint hashes them.
``text_files``
    Files matched by ``pattern`` (a glob; ``**`` recurses), one document per file
    (``unit="file"``) or per blank-line separated paragraph (``unit="paragraph"``).
    Options: ``pattern``, ``unit`` ("file"), ``min_chars`` (1), ``validation_fraction``,
    ``encoding`` ("utf-8"; checked before any file is read). A byte the encoding cannot
    decode is a ValueError naming the file, the line and the column (never replaced;
    glmlab/data/text_files.py).
``jsonl``
    One document per line of the JSON-lines file ``path``, taken from ``field``
    ("text"). Options: ``path``, ``field``, ``min_chars`` (1), ``validation_fraction``,
    ``max_line_mb`` (8: a longer line is refused before it is read whole; tokenizing
    one document takes about 100 times its size in memory).

The train/validation split is decided per document by a hash of its text, so it does not
depend on document order or on which other documents are present.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmlab.data.docstrings import read_installed_docs, read_stdlib_docs
from glmlab.data.text_files import load_text_files

__all__ = [
    "SPLITS",
    "TEST_FRACTION",
    "Corpus",
    "check_test_fraction",
    "known_corpora",
    "load_corpus",
    "split_documents",
    "split_of",
    "split_train_validation",
]

log = logging.getLogger("glmlab")


@dataclass(frozen=True)
class Corpus:
    """A named corpus split into training and validation documents."""

    name: str
    train: list[str]
    validation: list[str]
    fingerprint: str
    test: list[str] = field(default_factory=list)  # read by the evaluation suite only
    # Where the documents came from, e.g. {distribution: version} (installed_docs).
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def n_docs(self) -> int:
        return len(self.train) + len(self.validation) + len(self.test)

    @property
    def n_chars(self) -> int:
        return sum(sum(map(len, docs)) for docs in (self.train, self.validation, self.test))


def _fingerprint(name: str, options: dict[str, Any], docs: Iterable[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([name, options], sort_keys=True, default=str).encode("utf-8"))
    for doc in docs:
        # Length prefix so that document boundaries are part of the hash.
        h.update(f"\x00{len(doc)}\x00".encode())
        h.update(doc.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


SPLITS = ("train", "validation", "test")

TEST_FRACTION = 0.05
"""Default share of documents held out as the *test* split, which only the evaluation
suite reads (never the validation loss, never a ladder's learning-rate choice)."""


def _hash_unit(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(text: str, validation_fraction: float, test_fraction: float = 0.0) -> str:
    """The split a document goes to, by a hash of its text: ``validation`` below
    ``validation_fraction``, ``test`` in the next ``test_fraction``, else ``train``."""
    u = _hash_unit(text)
    if u < validation_fraction:
        return "validation"
    return "test" if u < validation_fraction + test_fraction else "train"


def split_documents(
    docs: list[str], validation_fraction: float, test_fraction: float = 0.0
) -> dict[str, list[str]]:
    """``{train, validation, test: documents}`` by :func:`split_of`; order within each
    split is preserved. A held-out split with a positive fraction is never left empty when
    the corpus has a document to spare for it (the training document whose hash is nearest
    its interval is moved): an empty one would silently disable evaluation on small corpora."""
    if not 0.0 <= validation_fraction <= 1.0 or not 0.0 <= test_fraction <= 1.0:
        raise ValueError(
            f"validation_fraction and test_fraction must be in [0, 1], got "
            f"{validation_fraction} and {test_fraction}"
        )
    units = [_hash_unit(d) for d in docs]
    where = [split_of(d, validation_fraction, test_fraction) for d in docs]
    if len(docs) >= 2 and "train" not in where:  # every document held out: train on one
        where[max(range(len(docs)), key=units.__getitem__)] = "train"
    for split, fraction, edge in (
        ("validation", validation_fraction, 0.0),
        ("test", test_fraction, validation_fraction),
    ):
        spare = [i for i, w in enumerate(where) if w == "train"]
        if 0.0 < fraction < 1.0 and split not in where and len(spare) >= 2:
            where[min(spare, key=lambda i: abs(units[i] - edge))] = split
    return {s: [d for d, w in zip(docs, where, strict=True) if w == s] for s in SPLITS}


def split_train_validation(
    docs: list[str], validation_fraction: float
) -> tuple[list[str], list[str]]:
    """Two splits only (no test split): ``(train, validation)`` by :func:`split_documents`."""
    parts = split_documents(docs, validation_fraction)
    return parts["train"], parts["validation"]


# ------------------------------------------------------------- the embedded corpora


def _load_stdlib_docs(*, min_chars: int = 200, validation_fraction: float = 0.05) -> list[str]:
    # The split is cheap; only the parse is cached (glmlab/data/docstrings.py).
    return read_stdlib_docs(min_chars)


def _load_installed_docs(
    *,
    packages: list[str] | None = None,
    stdlib: bool = True,
    min_chars: int = 200,
    validation_fraction: float = 0.05,
) -> tuple[list[str], dict[str, str]]:
    if packages is not None and (
        not isinstance(packages, list | tuple) or not all(isinstance(p, str) for p in packages)
    ):
        raise ValueError(
            f"installed_docs: packages={packages!r} must be a list of distribution names, "
            "or null for the distributions glmlab requires"
        )
    return read_installed_docs(None if packages is None else list(packages), min_chars, stdlib)


# --------------------------------------------------------------------------------- jsonl


def _jsonl_lines(file: Path, max_line_mb: float) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, streamed; a line over ``max_line_mb`` MiB or
    not valid UTF-8 is a ValueError naming the file and the line (never read whole)."""
    limit = max(1, int(max_line_mb * 2**20))
    with file.open("rb") as f:
        lineno = 0
        while True:
            raw = f.readline(limit + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise ValueError(
                    f"{file}:{lineno}: line longer than {max_line_mb:g} MiB; a jsonl corpus holds "
                    "one document per line: split long documents, or raise "
                    "data.corpus_options.max_line_mb"
                )
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{file}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
                    f"{e.start + 1}); re-encode the file as UTF-8"
                ) from None


def jsonl_records(file: Path, max_line_mb: float) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of a JSON-lines file, streamed; a
    line that is not a JSON object is a ValueError naming the file and the line (and those
    of :func:`_jsonl_lines`)."""
    for lineno, line in _jsonl_lines(file, max_line_mb):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{file}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{file}:{lineno}: not a JSON object")
        yield lineno, record


def _load_jsonl(
    *,
    path: str,
    field: str = "text",
    min_chars: int = 1,
    validation_fraction: float = 0.05,
    max_line_mb: float = 8.0,
) -> list[str]:
    file = Path(os.path.expanduser(path))
    if file.is_dir():
        raise ValueError(
            f"jsonl: {str(file)!r} is a directory, not a JSON-lines file; set "
            "corpus_options.path to a .jsonl file (a folder of text files: data=text_files)"
        )
    if not file.is_file():
        raise ValueError(f"jsonl: no such file {str(file)!r}; set corpus_options.path")
    if file.stat().st_size == 0:
        raise ValueError(
            f"jsonl: {str(file)!r} is empty (0 bytes); it needs one JSON object per line, "
            f'e.g. {{"{field}": "a document"}}'
        )
    docs: list[str] = []
    for lineno, record in jsonl_records(file, max_line_mb):
        if field not in record:
            raise ValueError(f"{file}:{lineno}: record has no field {field!r}")
        text = record[field]
        if not isinstance(text, str):
            # A data error like the others, so the same exception type.
            raise ValueError(
                f"{file}:{lineno}: field {field!r} is {type(text).__name__}, not a string"
            )
        if len(text) >= max(min_chars, 1):
            docs.append(text)
    return docs


# ------------------------------------------------------------------------------ registry


def check_test_fraction(value: Any, options: dict[str, Any]) -> float:
    """``data.corpus_options.test_fraction``, checked: a number in [0, 1) that leaves
    room for training beside ``validation_fraction``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(
            f"data.corpus_options.test_fraction={value}: must be a number in [0, 1) (0: no "
            "test split; the evaluation suite then reads the validation split)"
        )
    validation = options.get("validation_fraction", 0.05)
    valid = isinstance(validation, int | float) and not isinstance(validation, bool)
    # An invalid validation_fraction is load_corpus's own error, reported after this one.
    if valid and 0 < validation < 1 and value + validation >= 1:
        raise ValueError(
            f"data.corpus_options.test_fraction={value} with validation_fraction="
            f"{options.get('validation_fraction', 0.05)} leaves nothing to train on: lower one"
        )
    return float(value)


# A loader returns the documents, or the documents and their sources ({name: version}).
_LOADERS: dict[str, Callable[..., Any]] = {
    "stdlib_docs": _load_stdlib_docs,
    "installed_docs": _load_installed_docs,
    "text_files": load_text_files,
    "jsonl": _load_jsonl,
}


def known_corpora() -> list[str]:
    """Names accepted by :func:`load_corpus`."""
    return sorted(_LOADERS)


def load_corpus(name: str = "stdlib_docs", **options: Any) -> Corpus:
    """Load corpus ``name`` with loader-specific ``options`` (see the module docstring) and
    split it; ``test_fraction`` (every corpus; default :data:`TEST_FRACTION`) is the test
    split's share."""
    test_fraction = check_test_fraction(options.pop("test_fraction", TEST_FRACTION), options)
    if name not in _LOADERS:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(known_corpora())}")
    loader = _LOADERS[name]
    params = inspect.signature(loader).parameters
    unknown = set(options) - set(params)
    if unknown:
        raise ValueError(
            f"corpus {name!r} does not accept option(s) {sorted(unknown)}; "
            f"accepted: {sorted(params)}"
        )
    missing = [p.name for p in params.values() if p.default is p.empty and p.name not in options]
    if missing:
        raise ValueError(f"corpus {name!r} needs option(s) {missing}")
    # Resolve defaults so that the fingerprint does not depend on how options were spelled.
    resolved = {p.name: options.get(p.name, p.default) for p in params.values()}
    fraction = resolved["validation_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        # checked before anything is read
        raise ValueError(
            f"data.corpus_options.validation_fraction={fraction}: must be a number in (0, 1)"
        )
    loaded = loader(**options)
    docs, sources = loaded if isinstance(loaded, tuple) else (loaded, {})
    parts = split_documents(docs, float(resolved["validation_fraction"]), test_fraction)
    keyed = {**resolved, "sources": sources} if sources else dict(resolved)
    if test_fraction:  # a corpus without a test split keeps its earlier fingerprint
        keyed["test_fraction"] = test_fraction
    corpus = Corpus(
        name,
        parts["train"],
        parts["validation"],
        _fingerprint(name, keyed, docs),
        parts["test"],
        dict(sources),
    )
    log.debug(
        "corpus %s: %d train / %d validation / %d test docs, %d chars, fingerprint %s",
        name,
        len(corpus.train),
        len(corpus.validation),
        len(corpus.test),
        corpus.n_chars,
        corpus.fingerprint,
    )
    return corpus
