"""One run of a sweep: train, and record the outcome in ``result.json`` whatever happens.

A failed or diverged run returns normally with its status, error and step recorded, so
that Hydra's sweeper never aborts the other runs of a multirun. A run directory that
already holds a finished result (completed or diverged) is skipped; an unfinished one
resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glmlab import provenance
from glmlab.io import read_json, write_json_atomic, write_text_atomic
from glmlab.rundir import CONFIG, ERROR_LOG, FINISHED, RESULT, RunStatus
from glmlab.sweep_naming import job_swept_overrides, run_dir_name, sweep_subdir
from glmlab.trackers import Trackers

__all__ = ["execute_run", "register_resolvers", "run_dir_name", "variant_overrides"]

log = logging.getLogger("glmlab")


def register_resolvers() -> None:
    """OmegaConf resolvers used by glmlab's Hydra config (``${glmlab_run_dir:...}``)."""
    if not OmegaConf.has_resolver("glmlab_run_dir"):
        # Named by the swept keys only (glmlab/sweep_naming.py).
        OmegaConf.register_new_resolver("glmlab_run_dir", sweep_subdir)


def variant_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define a variant: all but the seed and the experiment choice."""
    # stop_after: a preemption drill; tracker: where results are sent, not what they are
    skip = ("seed", "experiment", "name", "train.stop_after", "tracker")
    spelled = {"True": "true", "False": "false", "None": "null"}  # sweeps print Python's spelling
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") not in skip:
            out.append(f"{key}={spelled.get(value, value)}")
    return sorted(out)


def tracker_variant(overrides: list[str]) -> list[str]:
    """How trackers name the run's variant: the keys its sweep varies, else its overrides."""
    swept = job_swept_overrides()
    return swept if swept is not None else variant_overrides(overrides)


def execute_run(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> dict[str, Any]:
    """Train the composed config in ``run_dir`` and return (and write) its result. In a
    run of several processes every rank trains and only rank 0 writes files."""
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
        "provenance": provenance.at_start(cfg),  # code, plugins, libraries, machine, times
    }
    started = time.perf_counter()
    trainer = trackers = None
    try:
        from glmlab.assemble import parse_config
        from glmlab.train.trainer import Diverged, Trainer

        if is_main:
            header = f"# overrides: {' '.join(sorted(overrides))}\n"  # all, fixed ones too
            write_text_atomic(run_dir / CONFIG, header + OmegaConf.to_yaml(cfg, resolve=True))
        spec = parse_config(cfg)
        # Before any data: a missing tracker library is an error now, not at step 5,000.
        trackers = Trackers.from_config(cfg, run_dir, tracker_variant(overrides), enabled=is_main)
        try:
            parallel = OmegaConf.select(cfg, "distributed.parallel", default="ddp")
            trainer = Trainer(spec, run_dir, parallel=parallel, trackers=trackers)
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
        if trackers is not None:  # also when preempted (SystemExit): flushed, closed as stopped
            trackers.finish(result)
        if trainer is not None:
            trainer.dist.close()
    result["wall_time_s"] = round(time.perf_counter() - started, 2)
    provenance.at_end(result)
    if is_main:
        write_json_atomic(result_path, result)
    return result
