"""The report's provenance section: what the runs of a sweep recorded about their code,
plugins, libraries and machine (:mod:`glmlab.runs.provenance` collects it into each
``result.json``), the values they share once, and a warning for every version that
differs between runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from glmlab.io import flatten

__all__ = ["VERSION_KEYS", "render_provenance"]

# Flattened keys whose difference between the runs of one sweep the report warns about
# (prefixes); host, device, Slurm job and times differ legitimately.
VERSION_KEYS = ("glmlab.", "plugins.", "torch.", "xformers", "python")


def _is_version_key(key: str) -> bool:
    return key.startswith(VERSION_KEYS)


def _for_report(prov: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened, each plugin as one value: ``plugins.positional`` -> ``rope (glmlab 0.1.0)``."""
    plugins = {
        f"plugins.{kind}": f"{p.get('name')} ({p.get('distribution')} {p.get('version')})"
        for kind, p in (prov.get("plugins") or {}).items()
        if isinstance(p, Mapping)
    }
    rest = {k: v for k, v in prov.items() if k != "plugins"}
    return {**(flatten(rest) if rest else {}), **plugins}


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


def render_provenance(provenances: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
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
