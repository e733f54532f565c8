"""File helpers shared by the cache, checkpoints, runs and reports: atomic writes (temp
file in the same directory, then ``os.replace``, so a reader never sees a half-written
file and a crash never destroys the previous version) and JSON lines.

Files are created with the process's umask (``0644`` under the usual ``022``), not
``mkstemp``'s ``0600``: reports and results on a shared filesystem stay readable to the team.
A write that fails for lack of space (torch's own error for it included) raises
:class:`DiskFullError`: one line naming the file and the free space, saying that the
previous version is kept.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMP_SUFFIX",
    "DiskFullError",
    "append_line",
    "atomic_write",
    "clean_stale_temps",
    "current_umask",
    "disk_full_error",
    "human_bytes",
    "is_disk_full",
    "iter_jsonl",
    "read_json",
    "read_jsonl",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_text_atomic",
]

log = logging.getLogger("glmlab")

TEMP_SUFFIX = ".tmp"  # atomic_write's temp files: ".<name>.<random>.tmp" next to the target
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# torch.save reports a failed write as a RuntimeError from its C++ zip writer.
_TORCH_WRITE_FAILED = ("PytorchStreamWriter failed writing", "file write failed")


class DiskFullError(OSError):
    """A write failed because the filesystem is full (or over quota); the message names the
    file and the free space (``path``, ``free``: bytes, None when unknown)."""

    def __init__(self, path: Path, free: int | None, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.path, self.free = path, free

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]"
        return str(self.strerror)


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error behind it) is a full filesystem or an exceeded quota."""
    # torch.save reports the file object's ENOSPC as its own RuntimeError ("unexpected pos
    # ..."), with the OSError as its context: the whole chain is searched.
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        if isinstance(cause, DiskFullError):
            return True
        if isinstance(cause, OSError) and cause.errno in _NO_SPACE:
            return True
        if isinstance(cause, RuntimeError) and any(s in str(cause) for s in _TORCH_WRITE_FAILED):
            return True
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    return False


def human_bytes(n: float) -> str:
    """``n`` bytes for people: ``512 bytes``, ``12.1 KiB``, ``3.4 GiB``."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def disk_full_error(
    path: str | os.PathLike[str],
    exc: BaseException,
    then: str = "what was written before is kept: free some space and rerun to resume",
) -> DiskFullError | None:
    """``exc`` as one :class:`DiskFullError` line naming ``path``, the free space and
    ``then`` (what it means), if ``exc`` is a full disk (or quota); else None."""
    if not is_disk_full(exc):
        return None
    path = Path(path)
    if isinstance(exc, DiskFullError) and exc.path == path:
        return exc
    folder = path.parent
    try:
        free: int | None = shutil.disk_usage(folder).free
        shown = f"{human_bytes(free)} free"  # type: ignore[arg-type]
    except OSError:
        free, shown = None, "free space unknown"
    return DiskFullError(
        path, free, f"could not write {path}: no space left on device ({shown} on {folder}); {then}"
    )


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)  # never leave a stray temp file behind
        full = disk_full_error(path, exc)
        if full is not None:
            raise full from exc
        raise
    return path


def clean_stale_temps(folder: str | os.PathLike[str], *, older_than_s: float = 0.0) -> list[Path]:
    """Remove ``atomic_write`` temp files a killed process left in ``folder`` (not below it)
    that are older than ``older_than_s`` seconds; return the removed paths. Call it only
    where no other process is writing (a locked run directory), or with an age margin."""
    removed = []
    now = time.time()
    for p in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        try:
            if p.is_file() and now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                removed.append(p)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append ``line`` and a newline to ``path``; a full disk raises :class:`DiskFullError`
    naming the file (a torn last line is repaired by :func:`glmlab.runs.metrics.repair_metrics`)."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as exc:
        full = disk_full_error(path, exc)
        if full is not None:
            raise full from exc
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """``(line number, object)`` for every non-blank line of ``path``; the object is None
    where the line is not a JSON object (a torn write, a damaged file)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                obj = None
            yield lineno, obj if isinstance(obj, dict) else None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file ([] if it does not exist). A line that is not
    one (a write torn by a crash or a full disk) is skipped with a warning naming it."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for lineno, obj in iter_jsonl(path):
        if obj is None:
            log.warning(
                "%s:%d: skipped a line that is not a JSON object (torn write?)", path, lineno
            )
        else:
            rows.append(obj)
    return rows


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def flatten(node: Any, prefix: str = "", *, encode: bool = False) -> dict[str, Any]:
    """A nested config as ``{"train.lr": 0.003, ...}`` (an empty mapping is a value);
    ``encode``: lists and mappings as JSON text (for tables and trackers)."""
    if isinstance(node, Mapping) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}.", encode=encode))
        return out
    if encode and isinstance(node, list | Mapping):
        return {prefix[:-1]: json.dumps(node)}
    return {prefix[:-1]: node}
