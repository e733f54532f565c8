"""Where a result came from: the code, the plugins, the libraries, the machine and the time.

:func:`at_start` records it into a run's ``result.json`` (key ``provenance``) when the run
starts, :func:`at_end` adds the end time and the attention backend that really ran (the
report's section is :mod:`glmlab.report.provenance`). Collecting never fails a run: a
value that cannot be read is null.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata as md
import logging
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glmlab.plugin.errors import PluginError
from glmlab.plugin.hookspecs import MODEL_GROUP_KINDS

__all__ = ["at_end", "at_start", "collect", "git_state"]

log = logging.getLogger("glmlab")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _version(distribution: str) -> str | None:
    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return None


@functools.cache
def git_state(path: str) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``path``; (None, None) without git or
    outside a checkout (an installed wheel). Dirty ignores untracked files."""
    try:
        commit = subprocess.run(
            ["git", "-C", path, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _plugins(cfg: DictConfig | None) -> dict[str, Any]:
    """The plugin each kind resolved to: registry name, distribution and its version."""
    if cfg is None:
        return {}
    from glmlab.plugin.registry import get_registry

    registry = get_registry()
    out: dict[str, Any] = {}

    def entry(kind: str, name: str) -> dict[str, Any]:
        try:
            e = registry.get(kind, name)
        except PluginError:  # 'auto' or an unknown name: the run reports the latter itself
            return {"name": name, "distribution": None, "version": None}
        return {"name": name, "distribution": e.distribution, "version": e.version}

    for kind in MODEL_GROUP_KINDS:  # selected by the config group named after the kind
        name = OmegaConf.select(cfg, f"{kind}.name", default=None)
        if name is not None:
            out[kind] = entry(kind, str(name))
    samplers = OmegaConf.select(cfg, "objective.samplers", default=None) or {}
    if OmegaConf.select(cfg, "objective.kind", default="glm") == "glm":
        for name in samplers:
            out[f"span_sampler.{name}"] = entry("span_sampler", str(name))
    for name in OmegaConf.select(cfg, "tracker", default=None) or {}:
        out[f"tracker.{name}"] = entry("tracker", str(name))
    return out


def collect(cfg: DictConfig | None = None) -> dict[str, Any]:
    """The provenance of a run of ``cfg`` in this process (see the module docstring)."""
    import torch

    root = str(Path(__file__).resolve().parents[2])
    commit, dirty = git_state(root)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    slurm = os.environ.get("SLURM_JOB_ID")
    if slurm and os.environ.get("SLURM_ARRAY_JOB_ID"):
        slurm = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return {
        "glmlab": {"version": _version("glmlab"), "commit": commit, "dirty": dirty},
        "plugins": _plugins(cfg),
        "torch": {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        },
        "xformers": _version("xformers"),
        "python": platform.python_version(),
        "device": {"gpu": gpu, "gpu_count": torch.cuda.device_count(), "cpu": _cpu_model()},
        "host": socket.gethostname(),
        "slurm_job_id": slurm,
        "started_at": _now(),
        "ended_at": None,
    }


def at_start(cfg: DictConfig | None) -> dict[str, Any]:
    """:func:`collect`, or as much as could be read with the error: never raises."""
    try:
        return collect(cfg)
    except Exception as exc:
        return {"started_at": _now(), "ended_at": None, "error": f"{type(exc).__name__}: {exc}"}


def at_end(prov: dict[str, Any], ran: str | None) -> None:
    """Complete a run's provenance ``prov`` (:func:`at_start`'s) in place: the end time and
    the attention backend that ran, ``ran`` (``auto`` resolves at run time)."""
    prov["ended_at"] = _now()
    plugins = prov.get("plugins")
    if ran and isinstance(plugins, dict) and plugins.get("attention", {}).get("name") != ran:
        from glmlab.plugin.registry import get_registry

        try:
            e = get_registry().get("attention", str(ran))
        except PluginError as exc:  # the run recorded which backend ran; only its version is lost
            log.debug("provenance: no version for attention backend %r: %s", ran, exc)
            return
        plugins["attention"] = {
            "name": str(ran),
            "distribution": e.distribution,
            "version": e.version,
            "configured": plugins.get("attention", {}).get("name"),
        }
