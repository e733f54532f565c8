"""The ``scale`` choice: ``cpu`` or ``gpu`` (conf/scale/), and ``auto``, the default, which
follows the device the run will train on.

Experiments list ``/scale: cpu`` in their own defaults (after their values, so that
``scale=gpu`` overrides their CPU sizes), so the root config (conf/config.yaml) cannot list
the group too: Hydra refuses a group chosen twice. Without an experiment the scale is
appended instead (``+scale=...``), which is what :func:`resolve_scale` does to the command
line before Hydra reads it: ``python -m glmlab``, ``glmlab inspect`` and ``glmlab submit``
all call it, so ``scale=cpu`` works as a plain override with or without an experiment, and
``scale=auto`` (or no scale at all, without an experiment) becomes ``cpu`` or ``gpu``:

- ``train.device=cuda...`` on the command line: ``gpu``; ``train.device=cpu`` or ``mps``: ``cpu``;
- otherwise ``gpu`` when torch sees a CUDA device, ``cpu`` when it does not.

With an experiment and no scale, the experiment's own default (``cpu``) stands. A scale
may pick a plugin group's option (``scale=cpu``: ``positional=rope``, whose file spells out
rope's options); a plugin chosen by name (``positional.name=alibi``) then takes the root
config's option of that group instead (:func:`named_plugins_yield`), so that it is built
with its own defaults, not with another plugin's options. The scale only sets other keys, so it never names a run directory (``NAMELESS_CHOICES`` in
glmlab/config/schema.py); ``scale=gpu`` writes under ``runs/<name>_gpu`` and
``sweeps/<name>_gpu`` instead (conf/scale/gpu.yaml).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTO",
    "SCALES",
    "ScaleChoice",
    "device_scale",
    "named_plugins_yield",
    "resolve_scale",
]

SCALES = ("cpu", "gpu")  # conf/scale/<name>.yaml
AUTO = "auto"
GROUP = "scale"
EXPERIMENT = "experiment"


@dataclass(frozen=True)
class ScaleChoice:
    """The scale a command runs at (``name``) and why: ``given`` when the command line
    named it, else the reason ``auto`` chose it."""

    name: str
    given: bool
    why: str

    def line(self) -> str:
        """``scale gpu (auto: CUDA device NVIDIA H100; scale=cpu to choose)``."""
        if self.given:
            return f"scale {self.name} (chosen on the command line)"
        other = "gpu" if self.name == "cpu" else "cpu"
        return f"scale {self.name} (auto: {self.why}; scale={other} to choose)"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def device_scale(overrides: Sequence[str] = ()) -> ScaleChoice:
    """What ``scale=auto`` means with these overrides on this machine (module docstring)."""
    device = next(
        (o.split("=", 1)[1] for o in reversed(overrides) if _key(o) == "train.device"), "auto"
    )
    if device.startswith("cuda"):
        return ScaleChoice("gpu", False, f"train.device={device}")
    if device in ("cpu", "mps"):
        return ScaleChoice("cpu", False, f"train.device={device}")
    import torch

    if torch.cuda.is_available():
        return ScaleChoice("gpu", False, f"CUDA device {torch.cuda.get_device_name(0)}")
    return ScaleChoice("cpu", False, "no CUDA device on this machine")


def _defaults(path: str) -> list[Any]:
    from omegaconf import OmegaConf

    text = importlib.resources.files("glmlab.conf").joinpath(path).read_text(encoding="utf-8")
    return list(OmegaConf.to_container(OmegaConf.create(text)).get("defaults") or [])


@functools.cache
def _scale_picks() -> dict[str, str]:
    """``{group: the root config's option}`` for every group a scale file overrides
    (``override /positional: rope`` in conf/scale/cpu.yaml)."""
    root = {k: v for d in _defaults("config.yaml") if isinstance(d, dict) for k, v in d.items()}
    picked = {
        key.removeprefix("override ").strip("/")
        for name in SCALES
        for entry in _defaults(f"{GROUP}/{name}.yaml")
        if isinstance(entry, dict)
        for key in entry
        if key.startswith("override ")
    }
    return {group: str(root[group]) for group in sorted(picked) if group in root}


def named_plugins_yield(overrides: Sequence[str]) -> list[str]:
    """``overrides`` with ``G=<root option>`` added where they choose a plugin by name
    (``G.name=X``) in a group ``G`` that a scale picks, and choose no option of ``G``: the
    scale's option carries options of its own plugin (module docstring)."""
    out = list(overrides)
    keys = {_key(o) for o in out}
    for group, option in _scale_picks().items():
        if f"{group}.name" in keys and group not in keys:
            out.insert(0, f"{group}={option}")
    return out


def resolve_scale(overrides: Sequence[str]) -> tuple[list[str], ScaleChoice | None]:
    """``overrides`` with the scale made explicit (module docstring), and the choice; None
    when an experiment's own default stands or the value is Hydra's to judge (a sweep
    ``scale=cpu,gpu``, a misspelt name: Hydra lists the options)."""
    out = named_plugins_yield(overrides)
    with_experiment = any(_key(o) == EXPERIMENT for o in out)
    at = next((i for i in reversed(range(len(out))) if _key(out[i]) == GROUP), None)
    if at is None:
        if with_experiment:
            return out, None
        choice = device_scale(out)
        return [*out, f"+{GROUP}={choice.name}"], choice
    value = out[at].split("=", 1)[1] if "=" in out[at] else ""
    if value == AUTO:
        choice = device_scale(out)
    elif value in SCALES:
        choice = ScaleChoice(value, True, "")
    else:
        choice = None
    spelled = f"{GROUP}={choice.name if choice else value}"
    # Without an experiment the group is not in the defaults list: append it.
    out[at] = spelled if with_experiment else f"+{spelled}"
    return out, choice
