"""Run-directory names inside a sweep: the swept keys only.

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
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from omegaconf import OmegaConf

from glmlab.config.rules import ConfigError
from glmlab.runs.layout import HYDRA_OVERRIDES, MULTIRUN

__all__ = [
    "ALWAYS_NAMED",
    "existing_run",
    "job_swept_overrides",
    "register_resolvers",
    "run_dir_name",
    "run_identity",
    "sweep_subdir",
    "swept_keys",
    "variant_overrides",
]

# Named whenever it is overridden, swept or not: adding seeds to a sweep finds the old runs.
ALWAYS_NAMED = "seed"


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
    ) - {ALWAYS_NAMED, *hc.job.config.override_dirname.exclude_keys}
    job = OverridesParser.create().parse_overrides(list(hc.overrides.task))
    return sorted(str(o.input_line) for o in job if o.key_or_group in keys)


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
    """The ``hydra.sweep.subdir`` of the current job (the ``glmlab_run_dir`` resolver)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return run_dir_name(override_dirname)
    hc = HydraConfig.get()
    sweep_file = Path(str(hc.sweep.dir)) / MULTIRUN
    if hc.mode != RunMode.MULTIRUN or not sweep_file.exists():
        return run_dir_name(override_dirname)
    sweep_cfg = OmegaConf.load(sweep_file)
    keys = swept_keys(
        OmegaConf.select(sweep_cfg, "hydra.overrides.task", default=None) or [],
        OmegaConf.select(sweep_cfg, "hydra.sweeper.params", default=None),
    )
    naming = hc.job.config.override_dirname
    job = OverridesParser.create().parse_overrides(list(hc.overrides.task))
    keys = (keys | {ALWAYS_NAMED} & {o.key_or_group for o in job}) - set(naming.exclude_keys)
    if not keys:
        return run_dir_name(override_dirname)
    lines = sorted(str(o.input_line) for o in job if o.key_or_group in keys)
    name = run_dir_name(naming.item_sep.join(line.replace("=", naming.kv_sep) for line in lines))
    if (sweep_file.parent / name).exists():
        return name
    # A run of this job made by an earlier invocation that swept other keys keeps its name.
    excluded = set(naming.exclude_keys)
    identity = run_identity([str(o.input_line) for o in job if o.key_or_group not in excluded])
    return existing_run(sweep_file.parent, identity, excluded) or name


def run_identity(overrides: Sequence[str]) -> frozenset[str]:
    """A run's overrides as a set, spelled one way (sweeps print ``True``, users ``true``)."""
    spelled = {"True": "true", "False": "false", "None": "null"}
    out = set()
    for o in overrides:
        key, _, value = o.partition("=")
        out.add(f"{key.lstrip('+~')}={spelled.get(value, value)}")
    return frozenset(out)


def existing_run(sweep_dir: Path, identity: frozenset[str], excluded: set[str]) -> str | None:
    """The name of the run directory under ``sweep_dir`` whose overrides (those not in
    ``excluded``) are ``identity``, from Hydra's ``.hydra/overrides.yaml``; None if none."""
    for overrides_file in sorted(sweep_dir.glob(f"*/{HYDRA_OVERRIDES}")):
        try:
            overrides = [str(o) for o in OmegaConf.load(overrides_file)]
        except Exception:  # a half-written or foreign file: not this run
            continue
        kept = [o for o in overrides if o.partition("=")[0].lstrip("+~") not in excluded]
        if run_identity(kept) == identity:
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
    """The overrides that define a variant: all but the seed and the experiment choice."""
    # stop_after: a preemption drill; run.on_change: how to rerun, not what; tracker: where
    # results are sent, not what they are; train.progress: how it shows (a parallel local
    # sweep turns the bars off, glmlab/cluster/local.py)
    skip = (
        "seed",
        "experiment",
        "name",
        "train.stop_after",
        "train.progress",
        "run.on_change",
        "tracker",
    )
    spelled = {"True": "true", "False": "false", "None": "null"}  # sweeps print Python's spelling
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") not in skip:
            out.append(f"{key}={spelled.get(value, value)}")
    return sorted(out)
