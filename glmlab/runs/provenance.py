"""Where a result came from: the code, the plugins, the libraries, the machine and the time.

:func:`at_start` records it into a run's ``result.json`` (key ``provenance``) when the run
starts, :func:`at_end` adds the end time and the attention backend that really ran;
:func:`render_markdown` is the report's section: the values the runs share, once per
sweep, and a warning for every version that differs between runs. Collecting never fails
a run: a value that cannot be read is null.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata as md
import os
import platform
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glmlab.plugin.hookspecs import MODEL_GROUP_KINDS

__all__ = ["VERSION_KEYS", "at_end", "at_start", "collect", "render_markdown"]

# Flattened keys whose difference between the runs of one sweep the report warns about
# (prefixes); host, device, Slurm job and times differ legitimately.
VERSION_KEYS = ("glmlab.", "plugins.", "torch.", "xformers", "python")


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
        except Exception:  # 'auto' or an unknown name: the run reports the latter itself
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
        try:
            from glmlab.plugin.registry import get_registry

            e = get_registry().get("attention", str(ran))
            plugins["attention"] = {
                "name": str(ran),
                "distribution": e.distribution,
                "version": e.version,
                "configured": plugins.get("attention", {}).get("name"),
            }
        except Exception:
            pass


# -- the report's section -----------------------------------------------------------------


def flatten(prov: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"torch": {"version": v}}`` -> ``{"torch.version": v}``."""
    out: dict[str, Any] = {}
    for k, v in prov.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _is_version_key(key: str) -> bool:
    return key.startswith(VERSION_KEYS)


def _for_report(prov: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened, each plugin as one value: ``plugins.positional`` -> ``rope (glmlab 0.1.0)``."""
    plugins = {
        f"plugins.{kind}": f"{p.get('name')} ({p.get('distribution')} {p.get('version')})"
        for kind, p in (prov.get("plugins") or {}).items()
        if isinstance(p, Mapping)
    }
    return {**flatten({k: v for k, v in prov.items() if k != "plugins"}), **plugins}


def _plugin_name(value: str) -> str:
    return value.split(" (", 1)[0]


def _differs(key: str, values: Sequence[str]) -> bool:
    """Whether differing ``values`` of ``key`` are a version difference to warn about: a
    plugin's only when one plugin name resolved to different distributions or versions
    (a sweep over plugins differs by name by design)."""
    if key.startswith("plugins."):
        by_name: dict[str, set[str]] = {}
        for v in values:
            by_name.setdefault(_plugin_name(v), set()).add(v)
        return any(len(vs) > 1 for vs in by_name.values())
    return _is_version_key(key)


def render_markdown(provenances: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """The report's provenance section for the runs' provenance records
    (``RunResult.provenance``; ``names`` label the runs): shared values once, ⚠ for each
    version that differs, with the runs per value."""
    flat = [_for_report(p) for p in provenances]
    lines = ["## Provenance", ""]
    missing = [n for n, f in zip(names, flat, strict=True) if not f]
    have = [(n, f) for n, f in zip(names, flat, strict=True) if f]
    if not have:
        return [*lines, "No run recorded its provenance (runs older than glmlab 0.1's record).", ""]
    keys = list(dict.fromkeys(k for _, f in have for k in f))
    shared, differing = [], []
    for key in keys:
        if key in ("started_at", "ended_at"):
            continue
        values = {str(f.get(key)) for _, f in have}
        (shared if len(values) == 1 else differing).append(key)
    starts = [f["started_at"] for _, f in have if f.get("started_at")]
    ends = [f["ended_at"] for _, f in have if f.get("ended_at")]
    if starts:
        lines.append(f"Runs started {min(starts)} … ended {max(ends) if ends else '(running)'}.")
        lines.append("")
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | `{have[0][1].get(k)}` |" for k in shared]
    warn = [k for k in differing if _differs(k, [str(f.get(k)) for _, f in have])]
    for key in differing:
        by_value: dict[str, list[str]] = {}
        for n, f in have:
            by_value.setdefault(str(f.get(key)), []).append(n)
        mark = "⚠ differs: " if key in warn else "varies: "
        cell = "; ".join(f"`{v}` ({len(runs)} runs)" for v, runs in by_value.items())
        lines.append(f"| {key} | {mark}{cell} |")
    lines.append("")
    for key in warn:
        by_value = {}
        for n, f in have:
            by_value.setdefault(str(f.get(key)), []).append(n)
        lines.append(f"- ⚠ **{key} differs between runs**:")
        lines += [f"  - `{v}`: {', '.join(runs)}" for v, runs in by_value.items()]
    if missing:
        lines.append(f"- no provenance recorded: {', '.join(missing)}")
    return [*lines, ""]
