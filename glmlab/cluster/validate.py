"""Checking a large sweep's configs before submitting it, in seconds rather than minutes.

Hydra's basic sweeper composes every job's config before launching (about 0.1 s each: a
minute for 500 runs). Jobs that set the same keys and pick the same config-group options
compose the same config tree and differ only in values. glmlab's configs are typed (the
schemas of glmlab/config/schema.py, in Hydra's ConfigStore), so :func:`check_batch`
composes one job of each such kind (unknown keys, missing group options, its values'
types) and sets every other job's values on its kind's config as Hydra would (their
types): what composing each job would check, at a fraction of the cost. ``glmlab submit``
uses this sweeper (``hydra/sweeper=glmlab_basic``); everything else is Hydra's basic
sweeper.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig

SWEEPER = "glmlab_basic"
SWEEPER_TARGET = "hydra_plugins.glmlab_cluster.RepresentativeSweeper"


def job_kind(overrides: Sequence[str], is_group: Callable[[str], bool]) -> tuple:
    """What makes two jobs compose the same config tree: the keys they set (and how:
    ``+``, ``~``) and the option chosen for each config group."""
    return _kind(OverridesParser.create().parse_overrides(list(overrides)), is_group)


def _kind(parsed: Sequence[Override], is_group: Callable[[str], bool]) -> tuple:
    return tuple(
        sorted(
            (
                o.key_or_group,
                o.type.name,
                o.input_line if is_group(o.key_or_group) else None,
            )
            for o in parsed
        )
    )


def check_batch(
    batch: Sequence[Sequence[str]],
    is_group: Callable[[str], bool],
    compose: Callable[[Sequence[str]], DictConfig],
) -> None:
    """Raise what composing each job of ``batch`` would raise (Hydra's
    ``ConfigCompositionException``), composing only the first job of each kind (see
    :func:`job_kind`) and setting the values of every other job on its kind's config."""
    parser = OverridesParser.create()
    configs: dict[tuple, DictConfig] = {}
    for overrides in batch:
        parsed = parser.parse_overrides(list(overrides))
        kind = _kind(parsed, is_group)
        if kind not in configs:
            configs[kind] = compose(overrides)
            continue
        # Same kind: the same group options and keys, so only the values are new. A key
        # the first job added (``+``) is set again; what it deleted (``~``) stays deleted.
        values = [
            dataclasses.replace(o, type=OverrideType.FORCE_ADD) if o.is_add() else o
            for o in parsed
            if not is_group(o.key_or_group) and not o.is_delete()
        ]
        ConfigLoaderImpl._apply_overrides_to_config(values, configs[kind])
