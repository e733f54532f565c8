"""Checking a large sweep's configs before submitting it, in seconds rather than minutes.

Hydra's basic sweeper composes every job's config before launching (about 0.1 s each: a
minute for 500 runs). Jobs that set the same keys and pick the same config-group options
compose the same config tree and differ only in values; glmlab's configs are untyped YAML,
so composing one job of each such kind checks what composing all of them would (unknown
keys, missing group options). ``glmlab submit`` uses this sweeper
(``hydra/sweeper=glmlab_basic``); everything else is Hydra's basic sweeper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser

SWEEPER = "glmlab_basic"
SWEEPER_TARGET = "hydra_plugins.glmlab_cluster.RepresentativeSweeper"


def job_kind(overrides: Sequence[str], is_group: Callable[[str], bool]) -> tuple:
    """What makes two jobs compose the same config tree: the keys they set (and how:
    ``+``, ``~``) and the option chosen for each config group."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
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


def representatives(
    batch: Sequence[Sequence[str]], is_group: Callable[[str], bool]
) -> list[Sequence[str]]:
    """The first job of each kind in ``batch`` (see :func:`job_kind`)."""
    seen: set[tuple] = set()
    out = []
    for overrides in batch:
        kind = job_kind(overrides, is_group)
        if kind not in seen:
            seen.add(kind)
            out.append(overrides)
    return out
