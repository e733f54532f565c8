"""What every benchmark records beside its numbers, and how it prints them."""

from __future__ import annotations

import datetime
import importlib.metadata as md
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command(*args: str) -> str | None:
    """The first line of a command's output, or None when it cannot run."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def environment(device: torch.device | None = None) -> dict[str, Any]:
    """Date, versions and hardware: enough to tell whether two results are comparable."""
    import glmlab

    root = Path(__file__).resolve().parent.parent
    env: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "xformers": _version("xformers"),
        "glmlab": glmlab.__version__,
        "commit": _command("git", "-C", str(root), "rev-parse", "--short", "HEAD"),
        "cpu": _cpu_model(),
        "cpus_visible": len(os.sched_getaffinity(0)),
        "gpu": None,
        "driver": None,
        "cuda": torch.version.cuda,
    }
    if device is not None and device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["driver"] = _command(
            "nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"
        )
    return env


def append_jsonl(path: str | os.PathLike[str] | None, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the JSON lines file ``path`` at once (nothing when None), so a
    stage killed later keeps what was measured before."""
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    """One JSON object per line with ``as_json``, else an aligned table of ``columns``."""
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return "-" if value is None else str(value)
