"""The run directory's lock: one process works in a run directory at a time (``flock`` on
``.lock``), and a folder glmlab cannot write is one clear error."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

from glmlab.runs.layout import LOCK

__all__ = [
    "RunLock",
    "RunLocked",
]

log = logging.getLogger("glmlab")


class RunLocked(RuntimeError):
    """Another process is working in the run directory (``RunLock(wait=False)``)."""


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock`` for the life of the ``with`` block: two
    processes never train one run directory at once. With ``wait`` (the default) a second
    process logs who holds it and waits; otherwise it raises :class:`RunLocked`. The lock
    goes with its process, however that process ends. The holder deletes the file before it
    lets go, so a run that ended leaves none; a waiter that then wins the lock on the deleted
    file sees that the path no longer leads to it and locks the path afresh. A ``.lock``
    that stays names a process that was killed (kill -9, a lost node): harmless, the next
    process takes it over."""

    def __init__(self, run_dir: str | Path, *, wait: bool = True) -> None:
        self.path = Path(run_dir) / LOCK
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        while True:
            fd = self._open()
            try:
                self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if self._current(fd):
                break
            os.close(fd)  # the holder deleted the file we waited on: lock the path anew
        self._fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _not_writable(self.path.parent, exc) from exc

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder() or "another process"
            if not self.wait:
                raise RunLocked(
                    f"run directory {self.path.parent} is in use by {holder}; "
                    "wait for it to finish, or give this run another directory"
                ) from None
            log.warning(
                "run directory %s is in use by %s: waiting for it to finish",
                self.path.parent,
                holder,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)

    def _current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the lock's path (not one deleted meanwhile)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def _holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text(encoding="utf-8").strip()
        return ""

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # deleted while held: no waiter can be misled
                self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _not_writable(folder: Path, exc: OSError) -> OSError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionError(
            exc.errno,
            f"run directory {folder} is not writable ({exc.strerror}); "
            "give the run a writable directory (hydra.run.dir=... or hydra.sweep.dir=...)",
        )
    return exc
