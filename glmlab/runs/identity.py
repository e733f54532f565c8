"""A run's identity (``identity.json``): the fingerprint of the config values that can
change its results and of the plugin distributions it uses, and what differs when a rerun
finds a run directory made with another config. Which keys can change results is marked
once, in the schema (``rule(..., identity=False)``, glmlab/config/schema.py); a run
directory's name (its *address*, glmlab/runs/naming.py) holds the same keys."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from glmlab.config.schema import in_identity
from glmlab.io import flatten, read_json, write_json_atomic
from glmlab.runs.layout import CONFIG, IDENTITY
from glmlab.runs.metrics import last_step

__all__ = [
    "ConfigChanged",
    "config_identity",
    "identity_changes",
    "plugin_versions",
    "read_identity",
    "write_identity",
]

log = logging.getLogger("glmlab")


class ConfigChanged(ValueError):
    """A run directory holds a run made with another config; the message says what differs."""


def config_identity(config: dict[str, Any], plugins: dict[str, str]) -> dict[str, Any]:
    """The identity of a run: its resolved config's values that can change results
    (flattened to dotted keys) and the ``{distribution: version}`` of the plugins it uses."""
    values = {k: v for k, v in sorted(flatten(config).items()) if in_identity(k)}
    blob = json.dumps([values, plugins], sort_keys=True, default=str)
    return {
        "fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:16],
        "config": values,
        "plugins": dict(sorted(plugins.items())),
    }


def plugin_versions(config: dict[str, Any]) -> dict[str, str]:
    """``{distribution: version}`` of glmlab and of every plugin ``config`` selects."""
    from importlib import metadata

    from glmlab.plugin.hookspecs import MODEL_GROUP_KINDS
    from glmlab.plugin.registry import PluginError, get_registry

    registry = get_registry()
    wanted = [(kind, (config.get(kind) or {}).get("name")) for kind in MODEL_GROUP_KINDS]
    samplers = ((config.get("objective") or {}).get("samplers") or {}).keys()
    wanted += [("span_sampler", name) for name in samplers]
    versions: dict[str, str] = {}
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["glmlab"] = metadata.version("glmlab")
    for kind, name in wanted:
        with contextlib.suppress(PluginError, KeyError):
            entry = registry.get(kind, str(name))
            versions[entry.distribution] = entry.version
    return versions


def read_identity(run_dir: str | Path) -> dict[str, Any] | None:
    """The identity the run directory was made with: identity.json, else (a directory
    from before identities) one derived from config.yaml without plugin versions; None
    for a fresh directory."""
    run_dir = Path(run_dir)
    with contextlib.suppress(OSError, ValueError):
        found = read_json(run_dir / IDENTITY)
        if isinstance(found, dict) and isinstance(found.get("config"), dict):
            return found
    if (run_dir / CONFIG).exists():
        from omegaconf import OmegaConf

        try:
            config = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG))
        except Exception as exc:  # a damaged config.yaml: nothing to compare with
            log.warning("unreadable %s (%s): its run's config is unknown", run_dir / CONFIG, exc)
            return {"config": {}, "plugins": None, "unreadable": True}
        identity = config_identity(config, {})  # type: ignore[arg-type]
        identity["plugins"] = None  # unknown: not compared
        return identity
    return None


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two identities, one ``key: old -> new`` line per value."""
    if old.get("unreadable"):
        return [f"{CONFIG}: unreadable, so the run's config is unknown"]
    changes = []
    for group in ("config", "plugins"):
        a, b = old.get(group), new.get(group)
        if a is None or b is None:
            continue
        for key in sorted(set(a) | set(b)):
            # Unset is null: a key the schema gained later, with a null default, is no change.
            if (group == "plugins" or in_identity(key)) and a.get(key) != b.get(key):
                prefix = "plugin " if group == "plugins" else ""
                changes.append(
                    f"{prefix}{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}"
                )
    return changes


def write_identity(
    run_dir: str | Path, identity: dict[str, Any], *, accepted: list[str] | None = None
) -> Path:
    """Write identity.json; ``accepted`` (a resume across a config change) is appended to
    the record's history with the step it happened at."""
    run_dir = Path(run_dir)
    history: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        history = list(read_json(run_dir / IDENTITY).get("history", []))
    if accepted:
        history.append({"at_step": last_step(run_dir), "time": time.time(), "changes": accepted})
    return write_json_atomic(run_dir / IDENTITY, {**identity, "history": history})
