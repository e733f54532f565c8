"""Run-directory names inside a sweep: the swept keys only, and a run's *address*.

Vocabulary: a run's **identity** is its config fingerprint (glmlab/runs/identity.py: the
values that can change its results); its **address** (:func:`run_address`) is the set of
its overrides of keys that are part of that identity, which finds its directory again. A
key is in both or in neither: the schema marks it once (``rule(..., identity=False)``,
glmlab/config/schema.py), and Hydra's ``exclude_keys`` (conf/config.yaml) lists the same keys.

A multirun's run directory is named by the overrides whose key the sweep varies (the
comma lists, ranges and choices of the command line, and ``hydra.sweeper.params``) and
the seed, so fixed overrides (the tiny settings, a data path) do not hide
``positional=rope,seed=1``. A job whose run was made by an earlier invocation that swept
other keys (one more variant, a key now fixed) finds that directory by its overrides.
The swept keys are read from the sweep's ``multirun.yaml``, which Hydra's sweeper writes
before it launches a job, so a job started on another node (submitit) names its directory
the same way, and a rerun of the same sweep finds the same directories. The run's full
override list stays in ``result.json`` (``overrides``), at the top of its ``config.yaml`` and
in ``.hydra/overrides.yaml``. Without a sweep (a single run, no swept key) the name is the
whole ``override_dirname`` as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from omegaconf import OmegaConf

from glmlab.config.rules import ConfigError
from glmlab.config.schema import in_identity
from glmlab.runs.layout import HYDRA_OVERRIDES, MULTIRUN

__all__ = [
    "ALWAYS_NAMED",
    "excluded",
    "existing_run",
    "job_swept_overrides",
    "register_resolvers",
    "run_address",
    "run_dir_name",
    "sweep_subdir",
    "swept_keys",
    "variant_overrides",
]

# Named whenever it is overridden, swept or not: adding seeds to a sweep finds the old runs.
ALWAYS_NAMED = "seed"
# Also named whenever overridden: the A/A control arm's stream (the sweeper adds those jobs
# without sweeping the key), so that they never share a directory with the baseline's.
NAMED_WHEN_SET = frozenset({ALWAYS_NAMED, "train.stream"})


def excluded(key: str, exclude_keys: Collection[str]) -> bool:
    """Whether override key ``key`` is among ``exclude_keys`` or under one of them
    (``tracker`` covers ``+tracker.wandb.project``), as the run's fingerprint reads them."""
    key = key.lstrip("+~")
    return any(key == k or key.startswith(k + ".") for k in exclude_keys)


def run_dir_name(override_dirname: str, max_len: int = 96) -> str:
    """A directory name from ``override_dirname``: readable, stable across reruns of the
    same sweep; long ones are cut and made unique by a hash."""
    name = override_dirname.replace("/", "_") or "defaults"
    if len(name) <= max_len:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: max_len - 11]}_{digest}"


def swept_keys(arguments: Sequence[str], params: Mapping[str, str] | None = None) -> set[str]:
    """The keys a sweep varies: sweep overrides among ``hydra.sweeper.params`` then the
    command line ``arguments`` (the later of two overrides of one key wins, as in Hydra's
    basic sweeper)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + [str(a) for a in arguments]
    swept: dict[str, bool] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        swept[override.key_or_group] = override.is_sweep_override()
    return {key for key, is_sweep in swept.items() if is_sweep}


def job_swept_overrides() -> list[str] | None:
    """The current Hydra job's overrides of the keys its sweep varies (sorted, the seed
    aside): what tells its variant apart. None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    sweep_file = Path(str(hc.sweep.dir)) / MULTIRUN
    if hc.mode != RunMode.MULTIRUN or not sweep_file.exists():
        return None
    sweep_cfg = OmegaConf.load(sweep_file)
    keys = swept_keys(
        OmegaConf.select(sweep_cfg, "hydra.overrides.task", default=None) or [],
        OmegaConf.select(sweep_cfg, "hydra.sweeper.params", default=None),
    ) - {ALWAYS_NAMED}
    skip = list(hc.job.config.override_dirname.exclude_keys)
    job = OverridesParser.create().parse_overrides(list(hc.overrides.task))
    return sorted(
        str(o.input_line)
        for o in job
        if o.key_or_group in keys and not excluded(o.key_or_group, skip)
    )


def contained_name(name: str) -> str:
    """``name`` as the folder under ``runs/`` or ``sweeps/`` (the ``glmlab_name`` resolver),
    refused when it would leave that root: an absolute path or a ``..`` part."""
    text = str(name)
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if not text.strip() or text.startswith(("/", "\\")) or ".." in parts or "~" == text[:1]:
        raise ConfigError(
            f"name={text}: must be a folder name inside runs/ (single run) or sweeps/ (-m), "
            "without '..', '~' or a leading '/'; nothing was written. To write elsewhere, "
            "keep the name and set hydra.run.dir=PATH (or hydra.sweep.dir=PATH with -m)"
        )
    return text


def sweep_subdir(override_dirname: str) -> str:
    """The run directory's name of the current job (the ``glmlab_run_dir`` resolver):
    ``override_dirname`` without the keys outside a run's identity (and their subkeys); in a
    multirun, only the swept keys and the seed."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return run_dir_name(override_dirname)
    hc = HydraConfig.get()
    naming = hc.job.config.override_dirname
    skip = list(naming.exclude_keys)
    job = [
        o
        for o in OverridesParser.create().parse_overrides(list(hc.overrides.task))
        if not excluded(o.key_or_group, skip)
    ]

    def dirname(chosen: list[Any]) -> str:  # Hydra's override_dirname of these overrides
        lines = sorted(str(o.input_line) for o in chosen)
        return run_dir_name(naming.item_sep.join(ln.replace("=", naming.kv_sep) for ln in lines))

    sweep_file = Path(str(hc.sweep.dir)) / MULTIRUN
    if hc.mode != RunMode.MULTIRUN or not sweep_file.exists():
        return dirname(job)
    sweep_cfg = OmegaConf.load(sweep_file)
    keys = swept_keys(
        OmegaConf.select(sweep_cfg, "hydra.overrides.task", default=None) or [],
        OmegaConf.select(sweep_cfg, "hydra.sweeper.params", default=None),
    ) | (NAMED_WHEN_SET & {o.key_or_group for o in job})
    keys = {k for k in keys if not excluded(k, skip)}
    if not keys:
        return dirname(job)
    named = [o for o in job if o.key_or_group in keys]
    name = dirname(named)
    if (sweep_file.parent / name).exists():
        return name
    # A run of this job made by an earlier invocation that swept other keys keeps its name.
    address = run_address([str(o.input_line) for o in job], skip)
    return existing_run(sweep_file.parent, address, skip) or name


def run_address(overrides: Sequence[str], exclude_keys: Collection[str] = ()) -> frozenset[str]:
    """A run's address: its overrides, without those of ``exclude_keys`` (:func:`excluded`),
    as a set spelled one way (sweeps print ``True``, users ``true``)."""
    spelled = {"True": "true", "False": "false", "None": "null"}
    out = set()
    for o in overrides:
        key, _, value = o.partition("=")
        if not excluded(key, exclude_keys):
            out.add(f"{key.lstrip('+~')}={spelled.get(value, value)}")
    return frozenset(out)


def existing_run(
    sweep_dir: Path, address: frozenset[str], exclude_keys: Collection[str]
) -> str | None:
    """The name of the run directory under ``sweep_dir`` whose overrides (those not in
    ``exclude_keys``) have ``address``, from Hydra's ``.hydra/overrides.yaml``; None if none."""
    for overrides_file in sorted(sweep_dir.glob(f"*/{HYDRA_OVERRIDES}")):
        try:
            overrides = [str(o) for o in OmegaConf.load(overrides_file)]
        except Exception:  # a half-written or foreign file: not this run
            continue
        if run_address(overrides, exclude_keys) == address:
            return overrides_file.parent.parent.name
    return None


def register_resolvers() -> None:
    """OmegaConf resolvers used by glmlab's Hydra config (``${glmlab_run_dir:...}``)."""
    if not OmegaConf.has_resolver("glmlab_run_dir"):
        # Named by the swept keys only (glmlab/runs/naming.py).
        OmegaConf.register_new_resolver("glmlab_run_dir", sweep_subdir)
    if not OmegaConf.has_resolver("glmlab_name"):
        # runs/<name>/, sweeps/<name>/: a name never leads outside them.
        OmegaConf.register_new_resolver("glmlab_name", contained_name)


def variant_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define a variant: those of keys in a run's identity
    (glmlab/config/schema.py, :func:`~glmlab.config.schema.in_identity`) but the seed."""
    spelled = {"True": "true", "False": "false", "None": "null"}  # sweeps print Python's spelling
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") != ALWAYS_NAMED and in_identity(key):
            out.append(f"{key}={spelled.get(value, value)}")
    return sorted(out)
