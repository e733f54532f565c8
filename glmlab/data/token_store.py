"""Memory-mapped example storage: an :class:`~glmlab.data.examples.ExampleSet` as flat
binary files in one cache folder, opened with ``np.memmap``.

No process holds the tokens in its own memory: every rank of a node (and every run of a
sweep) maps the same files, which the OS keeps once in its page cache. Token ids are
``uint16`` when the vocabulary fits (< 65,536 ids), else ``int32``. :class:`ExampleWriter`
builds a store one document at a time (chunk, filter, pack as :func:`build_examples` does),
so preparing a corpus of any size needs memory for one batch of documents only. A store
is written into a temporary folder and renamed into place: concurrent writers race
harmlessly and a reader never sees half a store.

Files: ``ids.bin``, ``sent_ends.bin`` (int32), ``piece_offsets.bin``, ``sent_offsets.bin``,
``example_offsets.bin`` (int64), ``meta.json`` (format, dtypes, counts, chunk_len, stats).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Self

import numpy as np

from glmlab.data.examples import ExampleSet, _chunk
from glmlab.data.pieces import Pieces
from glmlab.structures import TokenizedText

__all__ = ["ExampleWriter", "id_dtype", "open_store", "store_exists", "write_store"]

FORMAT = 2  # 2: checksums in meta.json
_FILES = ("ids", "sent_ends", "piece_offsets", "sent_offsets", "example_offsets")


def id_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id of a ``vocab_size`` vocabulary fits, else ``int32``."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.int32)


class PublishOnExit:
    """``with`` for a writer that publishes its output on ``close()`` and discards it on
    ``abort()``: a clean exit publishes, an exception discards (nothing half-written)."""

    def close(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ExampleWriter(PublishOnExit):
    """Stream documents into a store at ``folder`` (see the module docstring); use as a
    context manager, or call :meth:`close` (which publishes the store) yourself."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        chunk_len: int,
        packing: bool,
        min_tokens: int = 8,
        vocab_size: int = 65536,
    ) -> None:
        if chunk_len < 1:
            raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
        self.folder = Path(folder)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", dir=self.folder.parent))
        self.chunk_len, self.packing, self.min_tokens = chunk_len, packing, max(int(min_tokens), 1)
        self.dtype = id_dtype(vocab_size)
        self._files: dict[str, IO[bytes]] = {n: open(self._tmp / f"{n}.bin", "wb") for n in _FILES}
        self.n_tokens = self.n_sent = self.n_pieces = self.n_examples = 0
        self.n_docs = 0
        self._example_tokens = 0
        self._files["piece_offsets"].write(np.int64(0).tobytes())
        self._files["sent_offsets"].write(np.int64(0).tobytes())
        self._files["example_offsets"].write(np.int64(0).tobytes())

    def add(self, doc: TokenizedText) -> None:
        """Chunk ``doc``, drop pieces under ``min_tokens`` and append the rest."""
        self.n_docs += 1
        for ids, ends in _chunk(doc, self.chunk_len):
            n = len(ids)
            if n < self.min_tokens:
                continue
            if self.n_pieces and (not self.packing or self._example_tokens + n > self.chunk_len):
                self._files["example_offsets"].write(np.int64(self.n_pieces).tobytes())
                self.n_examples += 1
                self._example_tokens = 0
            self._example_tokens += n
            self._files["ids"].write(np.asarray(ids).astype(self.dtype, copy=False).tobytes())
            self._files["sent_ends"].write(np.asarray(ends, dtype=np.int32).tobytes())
            self.n_tokens += n
            self.n_sent += len(ends)
            self.n_pieces += 1
            self._files["piece_offsets"].write(np.int64(self.n_tokens).tobytes())
            self._files["sent_offsets"].write(np.int64(self.n_sent).tobytes())

    def add_pieces(self, pieces: Pieces, n_docs: int) -> None:
        """Append a batch of already cut and filtered pieces (glmlab/data/pieces.py) of
        ``n_docs`` documents: the same store as :meth:`add` of each document, in bulk."""
        self.n_docs += n_docs
        lengths = np.asarray(pieces.lengths, dtype=np.int64)
        if len(lengths) == 0:
            return
        # Greedy packing, carried across batches exactly as add() does it.
        bounds, first, total = [], self.n_pieces, self._example_tokens
        for k, n in enumerate(lengths.tolist()):
            if first + k and (not self.packing or total + n > self.chunk_len):
                bounds.append(first + k)
                total = 0
            total += n
        self._example_tokens = total
        if bounds:
            self._files["example_offsets"].write(np.asarray(bounds, np.int64).tobytes())
            self.n_examples += len(bounds)
        counts = np.asarray(pieces.sent_counts, dtype=np.int64)
        self._files["ids"].write(np.asarray(pieces.ids).astype(self.dtype, copy=False).tobytes())
        self._files["sent_ends"].write(np.asarray(pieces.sent_ends, dtype=np.int32).tobytes())
        self._files["piece_offsets"].write((self.n_tokens + np.cumsum(lengths)).tobytes())
        self._files["sent_offsets"].write((self.n_sent + np.cumsum(counts)).tobytes())
        self.n_tokens += int(lengths.sum())
        self.n_sent += int(counts.sum())
        self.n_pieces += len(lengths)

    def add_all(self, docs: Iterable[TokenizedText]) -> ExampleWriter:
        for doc in docs:
            self.add(doc)
        return self

    def close(self, **stats: Any) -> Path:
        """Finish and publish the store (``stats`` go into meta.json); return its folder."""
        if self.n_pieces:
            self._files["example_offsets"].write(np.int64(self.n_pieces).tobytes())
            self.n_examples += 1
        for f in self._files.values():
            f.close()
        meta = {
            "format": FORMAT,
            "chunk_len": self.chunk_len,
            "ids_dtype": self.dtype.name,
            "n_tokens": self.n_tokens,
            "n_sent": self.n_sent,
            "n_pieces": self.n_pieces,
            "n_examples": self.n_examples,
            "n_docs": self.n_docs,
            **stats,
        }
        return _publish(self._tmp, self.folder, meta)

    def abort(self) -> None:
        for f in self._files.values():
            f.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


def write_store(es: ExampleSet, folder: str | os.PathLike[str], vocab_size: int) -> Path:
    """Write an in-memory :class:`ExampleSet` as a store (same examples, mapped on load)."""
    writer = ExampleWriter(folder, chunk_len=es.chunk_len, packing=False, vocab_size=vocab_size)
    ids = np.asarray(es.ids).astype(writer.dtype, copy=False)
    arrays = {
        "ids": ids,
        "sent_ends": np.asarray(es.sent_ends, dtype=np.int32),
        "piece_offsets": np.asarray(es.piece_offsets, dtype=np.int64),
        "sent_offsets": np.asarray(es.sent_offsets, dtype=np.int64),
        "example_offsets": np.asarray(es.example_offsets, dtype=np.int64),
    }
    for name, f in writer._files.items():
        f.seek(0)
        f.truncate()
        f.write(arrays[name].tobytes())
        f.close()
    writer._files = {}
    meta = {
        "format": FORMAT,
        "chunk_len": es.chunk_len,
        "ids_dtype": writer.dtype.name,
        "n_tokens": es.n_tokens,
        "n_sent": len(es.sent_ends),
        "n_pieces": es.n_pieces,
        "n_examples": len(es),
    }
    return _publish(writer._tmp, writer.folder, meta)


def _checksum(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _publish(tmp: Path, folder: Path, meta: dict[str, Any]) -> Path:
    """Checksum the files, write meta.json and rename the finished store into place. The
    folder gets the umask's permissions (mkdtemp makes it private), so teammates sharing a
    cache can read it."""
    meta = {**meta, "checksums": {n: _checksum(tmp / f"{n}.bin") for n in _FILES}}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process published the same store first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def store_exists(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / "meta.json").is_file()


def store_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads((Path(folder) / "meta.json").read_text())


def open_store(folder: str | os.PathLike[str]) -> ExampleSet:
    """The store at ``folder`` as an :class:`ExampleSet` over read-only memory maps."""
    folder = Path(folder)
    meta = store_meta(folder)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: token store format {meta.get('format')} != {FORMAT}")
    dtypes = {
        "ids": np.dtype(meta["ids_dtype"]),
        "sent_ends": np.dtype(np.int32),
        "piece_offsets": np.dtype(np.int64),
        "sent_offsets": np.dtype(np.int64),
        "example_offsets": np.dtype(np.int64),
    }
    counts = {
        "ids": meta["n_tokens"],
        "sent_ends": meta["n_sent"],
        "piece_offsets": meta["n_pieces"] + 1,
        "sent_offsets": meta["n_pieces"] + 1,
        "example_offsets": meta["n_examples"] + 1,
    }
    arrays = {}
    for name in _FILES:
        path = folder / f"{name}.bin"
        if path.stat().st_size != counts[name] * dtypes[name].itemsize:
            raise ValueError(f"{path}: size does not match meta.json (truncated store)")
        # A flipped bit would silently change the training tokens: verified on every open
        # (about a second per GB, once per process).
        if "checksums" in meta and _checksum(path) != meta["checksums"].get(name):
            raise ValueError(f"{path}: checksum does not match meta.json (damaged store)")
        arrays[name] = (
            np.memmap(path, dtype=dtypes[name], mode="r", shape=(counts[name],))
            if counts[name]
            else np.zeros(0, dtypes[name])
        )
    return StoredExampleSet(
        folder,
        arrays["ids"],
        arrays["piece_offsets"],
        arrays["sent_ends"],
        arrays["sent_offsets"],
        arrays["example_offsets"],
        int(meta["chunk_len"]),
    )


class StoredExampleSet(ExampleSet):
    """An :class:`ExampleSet` over the memory maps of the store at ``store``: it pickles as
    that path, so a spawned loader worker maps the same files instead of receiving a copy."""

    def __init__(self, store: Path, *arrays: Any) -> None:
        super().__init__(*arrays)
        self.store = store

    def __reduce__(self) -> tuple:
        return (open_store, (self.store,))
