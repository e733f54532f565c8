"""One run of a sweep: train, and record the outcome in ``result.json`` whatever happens.

A failed or diverged run returns normally with its status, error and step recorded, so
that Hydra's sweeper never aborts the other runs of a multirun. A run directory that
already holds a finished result (completed or diverged) is skipped; an unfinished one
resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glmlab.io import read_json, write_json_atomic, write_text_atomic
from glmlab.rundir import CHECKPOINT, CONFIG, ERROR_LOG, FINISHED, RESULT, RunStatus

log = logging.getLogger("glmlab")


def run_dir_name(override_dirname: str, max_len: int = 96) -> str:
    """A run's directory name inside a sweep: its overrides, readable and stable across
    reruns of the same sweep; long ones are cut and made unique by a hash."""
    name = override_dirname.replace("/", "_") or "defaults"
    if len(name) <= max_len:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: max_len - 11]}_{digest}"


def register_resolvers() -> None:
    """OmegaConf resolvers used by glmlab's Hydra config (``${glmlab_run_dir:...}``)."""
    if not OmegaConf.has_resolver("glmlab_run_dir"):
        OmegaConf.register_new_resolver("glmlab_run_dir", run_dir_name)


def variant_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define a variant: all but the seed and the experiment choice."""
    skip = ("seed", "experiment", "name", "train.stop_after")  # stop_after: a preemption drill
    spelled = {"True": "true", "False": "false", "None": "null"}  # sweeps print Python's spelling
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") not in skip:
            out.append(f"{key}={spelled.get(value, value)}")
    return sorted(out)


def execute_run(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> dict[str, Any]:
    """Train the composed config in ``run_dir`` and return (and write) its result. In a
    run of several processes every rank trains and only rank 0 writes files."""
    from glmlab.cli_help import versions
    from glmlab.train.distributed import job_logs, process_ranks

    run_dir = Path(run_dir)
    is_main = process_ranks()[0] == 0
    result_path = run_dir / RESULT
    if result_path.exists():
        previous = read_json(result_path)
        if previous.get("status") in FINISHED:
            log.info("run %s already %s: skipped", run_dir, previous["status"])
            return previous
    result: dict[str, Any] = {
        "overrides": sorted(overrides),
        "variant": variant_overrides(overrides),
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
        "status": RunStatus.FAILED.value,
        "step": 0,
        "final_val_loss": None,
        "error": None,
        "job_logs": job_logs(),  # submitit's stdout/stderr files of this job, if it ran one
        "versions": versions(),  # glmlab, torch, Python (the stdlib_docs corpus's source)
    }
    started = time.perf_counter()
    trainer = None
    try:
        from glmlab.assemble import parse_config
        from glmlab.train.trainer import Diverged, Trainer

        if is_main:
            write_text_atomic(run_dir / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
        spec = parse_config(cfg)
        try:
            parallel = OmegaConf.select(cfg, "distributed.parallel", default="ddp")
            trainer = Trainer(spec, run_dir, parallel=parallel)
            outcome = trainer.fit()
            result.update(
                status=outcome.status,
                step=outcome.step,
                final_val_loss=outcome.final_val_loss,
                tokens_per_s=outcome.tokens_per_s,
                n_params=outcome.n_params,
                attention=outcome.attention,
                eval=outcome.eval,  # the evaluation suite's final metrics, or None
            )
        except Diverged as exc:
            result.update(status=RunStatus.DIVERGED.value, step=exc.step, error=str(exc))
            log.warning("run %s diverged: %s", run_dir, exc)
    except Exception as exc:
        result.update(error=f"{type(exc).__name__}: {exc}", step=getattr(trainer, "step", 0))
        if is_main:
            write_text_atomic(run_dir / ERROR_LOG, traceback.format_exc())
        log.error("run %s failed: %s", run_dir, result["error"])
    finally:
        if trainer is not None:
            trainer.dist.close()
    result["wall_time_s"] = round(time.perf_counter() - started, 2)
    if is_main:
        write_json_atomic(result_path, result)
        if result["status"] == RunStatus.COMPLETED and cfg.train.get("keep_checkpoint") != "last":
            # The outcome is on disk: the resumable state is no longer needed (weights.pt
            # keeps the final weights unless keep_checkpoint=none).
            (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return result
