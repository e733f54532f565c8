"""Documents of local data files in batches, read with bounded memory.

What ``datasets`` would give for the same files (the ``hf`` corpus's formats), without its
Arrow copy: JSON Lines (one object per line; a line over ``max_line_mb`` MiB or not UTF-8 is
a clear error naming the file and the line), parquet (the one column, row group by row
group, through pyarrow) and text (one document per line after universal-newline
translation, the newline removed, as ``datasets``' text loader does). Each reader yields
lists of :data:`~glmlab.data.store_builder.BATCH_DOCS` values of ``field`` (None where a
record lacks it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from glmlab.data.corpus import jsonl_records
from glmlab.data.store_builder import BATCH_DOCS

__all__ = ["READERS", "is_json_lines", "json_lines_batches", "parquet_batches", "text_batches"]


def is_json_lines(file: str) -> bool:
    """Whether ``file`` is JSON Lines (its first line one JSON object), not one JSON
    document (a list, or an object spread over lines), which ``datasets`` reads whole."""
    with open(file, "rb") as f:
        first = f.readline(1 << 20).strip()
    if not first:
        return True
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def json_lines_batches(files: list[str], field: str, max_line_mb: float) -> Iterator[list[Any]]:
    """The ``field`` values of JSON-lines ``files``, in batches of BATCH_DOCS, read line
    by line (bounded memory; a line over ``max_line_mb`` or not UTF-8 is a clear error,
    as for the jsonl corpus). A record without the field gives None, as in ``datasets``."""
    batch: list[Any] = []
    first = True
    for file in files:
        for _, record in jsonl_records(Path(file), max_line_mb):
            if first and field not in record:
                raise ValueError(
                    f"hf: the dataset has no column {field!r}; columns: {sorted(record)}"
                )
            first = False
            batch.append(record.get(field))
            if len(batch) == BATCH_DOCS:
                yield batch
                batch = []
    if batch:
        yield batch


def parquet_batches(files: list[str], field: str, max_line_mb: float) -> Iterator[list[Any]]:
    """The ``field`` column of parquet ``files``, in batches (``max_line_mb``: unused)."""
    import pyarrow.parquet as pq

    for file in files:
        # Unbuffered reads of whole row groups grow pyarrow's peak memory the most.
        with pq.ParquetFile(file, pre_buffer=False, buffer_size=1 << 20) as pf:
            names = pf.schema_arrow.names
            if field not in names:
                raise ValueError(f"hf: the dataset has no column {field!r}; columns: {names}")
            for batch in pf.iter_batches(batch_size=BATCH_DOCS, columns=[field]):
                yield batch.column(0).to_pylist()


def text_batches(files: list[str], field: str, max_line_mb: float) -> Iterator[list[Any]]:
    """Every line of text ``files`` as a document, in batches (the column is ``text``)."""
    if field != "text":
        raise ValueError(f"hf: the dataset has no column {field!r}; columns: ['text']")
    limit = max(1, int(max_line_mb * 2**20))
    batch: list[Any] = []
    for file in files:
        lineno = 0
        with open(file, encoding="utf-8") as f:  # universal newlines, as datasets reads text
            while True:
                try:
                    line = f.readline(limit + 1)
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"{file}: not valid UTF-8 after line {lineno} ({e.reason}); re-encode "
                        "the file as UTF-8"
                    ) from None
                if not line:
                    break
                lineno += 1
                if len(line) > limit and not line.endswith("\n"):
                    raise ValueError(
                        f"{file}:{lineno}: line longer than {max_line_mb:g} MiB; raise "
                        "data.corpus_options.max_line_mb or split the line"
                    )
                batch.append(line[:-1] if line.endswith("\n") else line)
                if len(batch) == BATCH_DOCS:
                    yield batch
                    batch = []
    if batch:
        yield batch


READERS: dict[str, Callable[[list[str], str, float], Iterator[list[Any]]]] = {
    "json": json_lines_batches,
    "parquet": parquet_batches,
    "text": text_batches,
}
