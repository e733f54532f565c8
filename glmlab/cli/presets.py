"""Which of glmlab's presets (the option files of conf/: ``objective=glm_token``,
``norm_layout=deepnorm_glm130b``, ...) select each plugin, for ``glmlab plugins``: the README
and ``--help`` speak in presets, the registry in plugin names."""

from __future__ import annotations

import importlib.resources
from typing import Any

from omegaconf import OmegaConf

from glmlab.config.schema import PLUGIN_GROUPS

__all__ = ["plugin_presets"]

SAMPLERS = ("objective", "span_sampler")  # the group whose files choose span samplers
TRACKERS = ("tracker", "tracker")  # one file per tracker, keyed by its name


def _options(group: str) -> list[tuple[str, Any]]:
    folder = importlib.resources.files("glmlab.conf").joinpath(group)
    if not folder.is_dir():
        return []
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            node = OmegaConf.to_container(OmegaConf.create(entry.read_text(encoding="utf-8")))
            out.append((entry.name.removesuffix(".yaml"), node if isinstance(node, dict) else {}))
    return out


def plugin_presets() -> dict[tuple[str, str], list[str]]:
    """``{(kind, registry name): ["group=option", ...]}``: the presets in glmlab's conf/
    that select each plugin (a plugin group's ``name``, an objective's span samplers, a
    tracker's file)."""
    out: dict[tuple[str, str], list[str]] = {}
    for group in PLUGIN_GROUPS:
        for option, node in _options(group):
            if isinstance(node.get("name"), str):
                out.setdefault((group, node["name"]), []).append(f"{group}={option}")
    group, kind = SAMPLERS
    for option, node in _options(group):
        for sampler in node.get("samplers") or {}:
            out.setdefault((kind, str(sampler)), []).append(f"{group}={option}")
    group, kind = TRACKERS
    for option, node in _options(group):
        for name in node:
            if name != "defaults":
                out.setdefault((kind, str(name)), []).append(f"{group}=[{option}]")
    return out
