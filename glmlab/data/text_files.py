"""The ``text_files`` corpus: the user's own text files, one document per file or per
blank-line separated paragraph, decoded with the encoding the user sets
(``data.corpus_options.encoding``, default utf-8, checked before any file is read). A byte
the encoding cannot decode is an error naming the file, the line and the column, as for the
``jsonl`` corpus: never replaced (:mod:`glmlab.data.corpus` lists every corpus)."""

from __future__ import annotations

import codecs
import glob
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["check_encoding", "decode_file", "load_text_files"]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def check_encoding(encoding: Any) -> str:
    """``encoding`` if Python can decode text with it, else a ValueError saying what to set."""
    try:
        if not isinstance(encoding, str):
            raise LookupError(encoding)
        # A LookupError for unknown names and bytes-to-bytes codecs (not for empty input).
        b"a".decode(encoding, errors="ignore")
    except LookupError:
        raise ValueError(
            f"data.corpus_options.encoding={encoding!r}: not a text encoding Python knows; "
            "give the files' encoding, e.g. utf-8 (the default), latin-1 or cp1252"
        ) from None
    return encoding


def decode_file(path: str, encoding: str) -> str:
    """The text of file ``path`` in ``encoding`` with universal newlines (as ``open`` reads
    text); an undecodable byte is a ValueError naming the file, line and column."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        before = raw[: e.start].decode(encoding, errors="replace")
        before = before.replace("\r\n", "\n").replace("\r", "\n")
        line = before.count("\n") + 1
        column = len(before) - before.rfind("\n")  # in characters, as an editor counts
        fix = (
            "re-encode the file as UTF-8, or set data.corpus_options.encoding to the files' "
            "encoding (e.g. latin-1 or cp1252)"
            if codecs.lookup(encoding).name == "utf-8"
            else f"re-encode the file as {encoding}, or set data.corpus_options.encoding"
        )
        raise ValueError(
            f"{path}:{line}: not valid {encoding} (byte {raw[e.start]:#04x} at column "
            f"{column}); {fix}"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_text_files(
    *,
    pattern: str,
    unit: str = "file",
    min_chars: int = 1,
    validation_fraction: float = 0.05,
    encoding: str = "utf-8",
) -> list[str]:
    """The documents of the files ``pattern`` matches (see the module docstring);
    ``validation_fraction`` is the corpus's split (:func:`glmlab.data.corpus.load_corpus`)."""
    if unit not in ("file", "paragraph"):
        raise ValueError(f"text_files: unit must be 'file' or 'paragraph', got {unit!r}")
    check_encoding(encoding)  # before any file is read
    paths = sorted(
        p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p)
    )
    if not paths:
        raise ValueError(
            f"text_files: pattern {pattern!r} matched no files (cwd: {os.getcwd()}); "
            "pass an absolute path or a glob such as '/data/books/**/*.txt' as "
            "corpus_options.pattern"
        )
    docs: list[str] = []
    for p in paths:
        text = decode_file(p, encoding)  # undecodable bytes are refused, never replaced
        pieces = _PARAGRAPH_BREAK.split(text) if unit == "paragraph" else [text]
        docs.extend(d for d in (s.strip() for s in pieces) if len(d) >= max(min_chars, 1))
    return docs
