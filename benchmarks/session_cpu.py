"""The CPU time of a command and every process it starts, whoever reaps them.

``resource.getrusage(RUSAGE_CHILDREN)`` counts only the processes a parent waited for: a
side-by-side sweep's runs are workers forked by a multiprocessing forkserver that the
sweep's process never reaps, so their CPU time never reaches it. :class:`SessionCPU` starts
the command in a session of its own and reads every process of that session from
``/proc`` twice a second (user + system time, per process); the total is the sum of each
process's last reading, short by at most half a second of each process's last moments.
Without ``/proc`` (not Linux) it falls back to ``RUSAGE_CHILDREN``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SessionCPU", "run_counting_cpu"]

PROC = Path("/proc")


class SessionCPU:
    """Sample the CPU seconds of every process in session ``sid`` until :meth:`stop`."""

    def __init__(self, sid: int, interval: float = 0.5) -> None:
        self.sid = sid
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen: dict[tuple[int, int], float] = {}  # (pid, start time) -> CPU seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> SessionCPU:
        self._thread.start()
        return self

    def sample(self) -> None:
        """Read every process of the session once."""
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone between the listing and the read
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after the command's name
            if int(fields[3]) != self.sid:  # field 6 of stat: the session id
                continue
            cpu = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
            self.seen[(int(entry.name), int(fields[19]))] = cpu

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> float:
        """Stop sampling; the CPU seconds of every process seen."""
        self._done.set()
        self._thread.join()
        return sum(self.seen.values())


def run_counting_cpu(
    command: Sequence[str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``command`` (output captured as text) and return it with the CPU seconds of it
    and of every process it started."""
    if not PROC.is_dir():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return proc, cpu
    popen = subprocess.Popen(
        list(command),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its session id is its pid: every process it starts
    )
    sampler = SessionCPU(popen.pid).start()
    stdout, stderr = popen.communicate()
    time.sleep(sampler.interval)  # the last workers' final readings
    sampler.sample()
    cpu = sampler.stop()
    return subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr), cpu
