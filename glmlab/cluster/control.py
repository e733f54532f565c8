"""The A/A control arm of a sweep (``report.control=true``, docs/REPORTS.md): every job of
the baseline variant again, under an independent stream of initialisation and data order
(``train.stream=1``: glmlab/assembly/seeds.py). The same recipe trained twice should never
differ significantly; when it does, the report warns that its noise model is wrong.
:class:`hydra_plugins.glmlab_cluster.RepresentativeSweeper` (``hydra/sweeper=glmlab_basic``,
the default) adds these jobs to each batch it launches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

__all__ = ["CONTROL_OVERRIDE", "STREAM_KEY", "control_jobs"]

STREAM_KEY = "train.stream"
CONTROL_OVERRIDE = f"{STREAM_KEY}=1"
_SPELLED = {"True": "true", "False": "false", "None": "null"}


def _parts(overrides: Sequence[str]) -> set[str]:
    out = set()
    for o in overrides:
        key, _, value = str(o).partition("=")
        out.add(f"{key.strip().lstrip('+~')}={_SPELLED.get(value.strip(), value.strip())}")
    return out


def control_jobs(batch: Sequence[Sequence[str]], config: Any) -> list[list[str]]:
    """The A/A jobs to add to ``batch``: each job whose overrides hold the baseline's
    (``report.baseline``) again with ``train.stream=1``, when ``report.control`` is set;
    none for jobs that already choose a stream."""
    if not OmegaConf.select(config, "report.control", default=False):
        return []
    baseline = OmegaConf.select(config, "report.baseline", default=None)
    if not baseline:
        return []
    wanted = _parts(b for b in str(baseline).split(",") if b.strip())
    out = []
    for job in batch:
        keys = {str(o).partition("=")[0].lstrip("+~") for o in job}
        if STREAM_KEY not in keys and wanted <= _parts(job):
            out.append([*job, CONTROL_OVERRIDE])
    return out
