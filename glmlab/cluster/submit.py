"""Submit a sweep's runs as Slurm job arrays and return: nothing waits for them.

The jobs are the ones hydra-submitit-launcher's ``submitit_slurm`` launcher would submit (its
``SlurmLauncher`` is the pickled callable: the same run directories, the same checkpoint and
requeue hook), with two differences: the arrays are cut below the cluster's
``MaxArraySize`` (``array_parallelism`` is shared out among them), and the submitting
process records the jobs in ``submission.json`` and ends instead of waiting for results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from glmlab.cluster.slurm import max_array_size, slurm_config
from glmlab.cluster.submission import SubmittedJob, now, record_submission

log = logging.getLogger("glmlab")

NO_CLUSTER = (
    "no Slurm controller answers `scontrol show config`: submit from a machine of the "
    "cluster (SLURM_CONF, if set, must name its slurm.conf); nothing was submitted"
)
# The launcher's settings that are submitit's own (not sbatch options).
_INIT_KEYS = ("submitit_folder", "max_num_timeout")


def chunks(n: int, size: int) -> list[range]:
    """``range(n)`` cut into consecutive pieces of at most ``size``."""
    if size < 1:
        raise ValueError(f"array size must be at least 1, got {size}")
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def share_parallelism(parallelism: int, sizes: Sequence[int]) -> list[int]:
    """Each array's ``%N`` so that the arrays together run at most ``parallelism`` jobs
    (each at least one, and never more than its size): shares in proportion to size."""
    total = sum(sizes)
    if parallelism >= total:
        return list(sizes)
    shares = [max(1, parallelism * s // total) for s in sizes]
    # Hand what rounding left over to the arrays one at a time, up to their size.
    spare = parallelism - sum(shares)
    while spare > 0 and any(s < n for s, n in zip(shares, sizes, strict=True)):
        for i, size in enumerate(sizes):
            if spare > 0 and shares[i] < size:
                shares[i] += 1
                spare -= 1
    return shares


def _executor(params: dict[str, Any]) -> Any:
    """A submitit Slurm executor with the launcher's settings (hydra-submitit-launcher's
    names: its base settings plain, the Slurm ones prefixed ``slurm_`` for submitit)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    executor = submitit.AutoExecutor(
        folder=params["submitit_folder"],
        cluster="slurm",
        slurm_max_num_timeout=params.get("max_num_timeout", 0),
    )
    base = {f.name for f in fields(BaseQueueConf)}
    executor.update_parameters(
        **{
            (k if k in base else f"slurm_{k}"): v
            for k, v in params.items()
            if k not in _INIT_KEYS and k != "array_parallelism"
        }
    )
    return executor


def run_dir_names(
    config: DictConfig, job_overrides: Sequence[Sequence[str]], first_num: int = 0
) -> list[str]:
    """Each job's run directory (relative to the sweep directory), as Hydra will name it
    in the job: ``hydra.sweep.subdir`` with the job's ``override_dirname`` and number
    (``first_num`` for the first job)."""
    parser = OverridesParser.create()
    dirname_cfg = config.hydra.job.config.override_dirname
    exclude = list(dirname_cfg.exclude_keys)
    names = []
    previous = HydraConfig.instance().cfg
    # A copy of the hydra node, where both ${hydra:job.x} and ${hydra.job.x} look.
    hydra_only = OmegaConf.masked_copy(config, "hydra")
    # The sweep directory may interpolate the job's config (``sweeps/${name}``), which the
    # copy lacks: resolved here, as Hydra resolves it before a job runs.
    with read_write(hydra_only), open_dict(hydra_only):
        hydra_only.hydra.sweep.dir = str(config.hydra.sweep.dir)
    HydraConfig.instance().cfg = hydra_only
    job = HydraConfig.get().job  # changed per job below
    given = HydraConfig.get().overrides  # the job's own overrides: what names its run
    try:
        for num, overrides in enumerate(job_overrides):
            task = [o for o in parser.parse_overrides(list(overrides)) if not o.is_hydra_override()]
            with read_write(given), open_dict(given):
                given.task = [o.input_line for o in task]
            with read_write(job), open_dict(job):
                job.override_dirname = dirname_from(
                    [o.input_line for o in task if o.key_or_group not in exclude],
                    item_sep=dirname_cfg.item_sep,
                    kv_sep=dirname_cfg.kv_sep,
                )
                job.num = first_num + num
            names.append(str(OmegaConf.select(HydraConfig.instance().cfg, "hydra.sweep.subdir")))
    finally:
        HydraConfig.instance().cfg = previous
    return names


def dirname_from(lines: list[str], *, item_sep: str, kv_sep: str) -> str:
    """Hydra's ``override_dirname``: the sorted override lines joined, ``=`` → kv_sep."""
    return item_sep.join(sorted(lines)).replace("=", kv_sep)


def submit_sweep(
    launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """Submit ``job_overrides`` as the jobs of ``launcher`` (a hydra-submitit-launcher
    ``SlurmLauncher`` set up by Hydra), record them, print their ids, and return at once:
    one completed :class:`JobReturn` per job whose value is its submission record."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    started = time.perf_counter()
    config = launcher.config
    params = dict(launcher.params)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    n = len(job_overrides)
    names = run_dir_names(config, job_overrides, initial_job_idx)

    # The callable the jobs run: the blocking launcher's, so a job behaves as it always did.
    worker = SlurmLauncher(**params)
    worker.setup(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=config,
    )
    cluster = slurm_config()
    if not cluster:
        raise RuntimeError(NO_CLUSTER)
    array_size = max_array_size(cluster)
    pieces = chunks(n, array_size)
    shares = share_parallelism(int(params.get("array_parallelism", 256)), [len(p) for p in pieces])
    executor = _executor(params)
    singleton_state = Singleton.get_state()
    submitted: list[SubmittedJob] = []
    for piece, share in zip(pieces, shares, strict=True):
        executor.update_parameters(slurm_array_parallelism=share)
        idx = [initial_job_idx + i for i in piece]
        jobs = executor.map_array(
            worker,
            [list(job_overrides[i]) for i in piece],
            ["hydra.sweep.dir"] * len(piece),
            idx,
            [f"job_id_for_{i}" for i in idx],
            [singleton_state] * len(piece),
        )
        for i, job in zip(piece, jobs, strict=True):
            submitted.append(
                SubmittedJob(
                    run=names[i],
                    job_id=str(job.job_id),
                    overrides=list(job_overrides[i]),
                    stdout=str(job.paths.stdout),
                    stderr=str(job.paths.stderr),
                    submitted_at=now(),
                )
            )
    seconds = round(time.perf_counter() - started, 2)
    arrays = sorted({j.job_id.split("_")[0] for j in submitted}, key=int)
    record = record_submission(
        sweep_dir,
        submitted,
        {
            "submitted_at": now(),
            "jobs": n,
            "array_ids": arrays,
            "max_array_size": array_size,
            "array_parallelism": shares,
            "seconds": seconds,
        },
    )
    for job in submitted:
        print(f"{job.job_id}\t{sweep_dir / job.run}")
    print(
        f"glmlab: submitted {n} jobs in {len(arrays)} array(s) {', '.join(arrays)} "
        f"({seconds} s); sweep directory {sweep_dir}\n"
        f"glmlab: follow with `glmlab status {sweep_dir}`, then `glmlab collect {sweep_dir}` "
        f"(jobs recorded in {record})"
    )
    return [
        JobReturn(
            overrides=list(job.overrides),
            working_dir=str(sweep_dir / job.run),
            task_name=str(config.hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value={"status": "submitted", "job_id": job.job_id, "run_dir": job.run},
        )
        for job in submitted
    ]
