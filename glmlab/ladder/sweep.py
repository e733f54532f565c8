"""The two phases of a ladder sweep, as the Hydra sweeper ``glmlab_ladder`` runs them.

The experiment's own sweep (``hydra.sweeper.params`` and the command line: its variants x
seeds) is expanded into

1. **tuning**: every variant x rung x learning rate of the grid, on the ladder's tuning
   seeds (not verdict seeds: the choice cannot leak into the verdict);
2. **verdict**: every variant x rung x seed at the learning rate read off the grid's
   validation loss of the training objective (glmlab/ladder/lr.py: the parabola's minimum
   in log lr, or the best grid point).

Each phase goes through the configured launcher (``self.launcher.launch``), so the basic
launcher, glmlab's local one (side by side) and glmlab's Slurm launchers all work. Only runs without
a finished result are launched: a rerun of the same command finds the finished grid points
and seed runs. With a launcher that returns once the jobs are queued (``glmlab submit``),
an invocation that had to queue grid points stops after phase 1; rerunning the same
command once they finished (``glmlab status``) chooses the learning rates and queues
phase 2. Jobs an earlier invocation queued that Slurm still has queued or running are
waited for, never submitted a second time (a rerun made too early says so). The plan, the
grid's results and the choices are saved as ``ladder.json`` in the sweep directory, where
the report reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from glmlab.config.ladder import ladder_settings
from glmlab.config.rules import Allowed, ConfigError, field_problems
from glmlab.config.schema import SEED_BOUNDS
from glmlab.io import write_json_atomic
from glmlab.ladder.lr import GridPoint, LrChoice, choose_lr
from glmlab.ladder.roles import LADDER_FILE
from glmlab.ladder.spec import LADDER_KEYS, LadderPlan, build_plan
from glmlab.runs.layout import MULTIRUN
from glmlab.runs.naming import existing_run, run_address
from glmlab.runs.result import RunResult, read_result

__all__ = ["LADDER_FILE", "finished_result", "plan_from_sweeper", "sweep_ladder"]

log = logging.getLogger("glmlab")

BASE_KEYS = (
    "train.batch_size",
    "train.grad_accum",
    "data.seq_len",
    "train.warmup_steps",
    "model.ffn",
    "model.ffn_mult",
)


def _split_jobs(jobs: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[int]]:
    """The experiment's jobs as (variants, seeds): each job's overrides without its seed."""
    variants: list[list[str]] = []
    seeds: list[int] = []
    for job in jobs:
        rest = [o for o in job if o.partition("=")[0].lstrip("+~") != "seed"]
        for o in job:
            if o.partition("=")[0].lstrip("+~") == "seed":
                value = o.partition("=")[2]
                if not value.lstrip("-").isdigit():
                    raise ConfigError(f"{o}: a ladder's verdict seeds must be integers")
                problems = field_problems("seed", int(value), int, Allowed(**SEED_BOUNDS))
                if problems:
                    raise ConfigError(problems[0])
                if int(value) not in seeds:
                    seeds.append(int(value))
        if sorted(rest) not in [sorted(v) for v in variants]:
            variants.append(list(rest))
    return variants, seeds


def plan_from_sweeper(config: Any, ladder: Any, jobs: Sequence[Sequence[str]]) -> LadderPlan:
    """The ladder plan of a composed multirun ``config`` whose sweep expands to ``jobs``
    (:class:`ConfigError` before anything is written)."""
    settings = ladder_settings(ladder)
    base = {k: OmegaConf.select(config, k, default=None) for k in BASE_KEYS}
    missing = [k for k, v in base.items() if v is None and k in BASE_KEYS[:3]]
    if missing:
        raise ConfigError(f"the config has no {', '.join(missing)}: a ladder needs glmlab's config")
    variants, seeds = _split_jobs(jobs)
    return build_plan(settings, {k: v for k, v in base.items() if v is not None}, variants, seeds)


def finished_result(
    sweep_dir: Path, overrides: Sequence[str], excluded: set[str]
) -> RunResult | None:
    """The result of the run of ``overrides`` in ``sweep_dir`` if it finished (completed
    or diverged); None otherwise."""
    return _finished(sweep_dir, run_address(overrides, excluded), excluded)


def _finished(sweep_dir: Path, address: frozenset[str], excluded: set[str]) -> RunResult | None:
    name = existing_run(sweep_dir, address, excluded)
    if name is None:
        return None
    result = read_result(sweep_dir / name)
    return result if result is not None and result.finished else None


def _naming_config(config: Any, params: dict[str, str], plan: LadderPlan) -> Any:
    """The multirun.yaml to save: the sweep's config with the ladder's keys listed among
    ``hydra.sweeper.params`` so that run directories are named by them
    (glmlab/runs/naming.py reads the swept keys from this file)."""
    values: dict[str, list[str]] = {}
    for _, _, _, job in plan.grid_jobs():
        for o in job:
            key, _, value = o.partition("=")
            if key in LADDER_KEYS and key != "seed" and value not in values.setdefault(key, []):
                values[key].append(value)
    saved = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    with open_dict(saved):
        saved.hydra.sweeper.params = {**params, **{k: ",".join(v) for k, v in values.items()}}
    return saved


def queued_runs(sweep_dir: Path, excluded: set[str]) -> set[frozenset[str]]:
    """The addresses of the sweep's runs whose Slurm job (submitted by an earlier
    invocation, ``submission.json``) is still queued or running, as Slurm says: submitting
    them again would start a second job on the same run directory."""
    from glmlab.cluster.status import LiveState, sweep_runs
    from glmlab.cluster.submission import read_submission

    submitted = read_submission(sweep_dir)
    if not submitted:
        return set()
    live = {
        v.name for v in sweep_runs(sweep_dir) if v.state in (LiveState.PENDING, LiveState.RUNNING)
    }
    return {run_address(job.overrides, excluded) for name, job in submitted.items() if name in live}


def _to_launch(
    jobs: list[list[str]], sweep_dir: Path, excluded: set[str], queued: set[frozenset[str]]
) -> tuple[list[list[str]], int]:
    """(the jobs without a finished run and not queued, how many are queued)."""
    todo, waiting = [], 0
    for job in jobs:
        address = run_address(job, excluded)
        if _finished(sweep_dir, address, excluded) is not None:
            continue
        if address in queued:
            waiting += 1
        else:
            todo.append(job)
    return todo, waiting


def _launch(sweeper: Any, batch: list[list[str]], start: int) -> list[Any]:
    if not batch:
        return []
    sweeper.validate_batch_is_legal(batch)
    return list(sweeper.launcher.launch(batch, initial_job_idx=start))


def choices(plan: LadderPlan, sweep_dir: Path, excluded: set[str]) -> dict[str, LrChoice]:
    """Each arm's :class:`LrChoice` from the grid runs on disk (their tuning seeds' mean)."""
    runs: dict[str, dict[float, list[GridPoint]]] = {}
    for v, r, lr, job in plan.grid_jobs():
        res = finished_result(sweep_dir, job, excluded)
        arm = runs.setdefault(plan.arm_key(v, r), {})
        arm.setdefault(lr, []).append(GridPoint.from_result(lr, res))
    return {
        arm: choose_lr([GridPoint.combine(lr, p) for lr, p in by_lr.items()], plan.lr_choice)
        for arm, by_lr in runs.items()
    }


def sweep_ladder(sweeper: Any, arguments: list[str]) -> list[Any]:
    """Run the ladder: phase 1 (the grid), the choice, phase 2 (the seeds)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from glmlab.cluster.launcher import submits_only

    config = sweeper.config
    params = {str(k): str(v) for k, v in (sweeper.params or {}).items()}
    lines = [f"{k}={v}" for k, v in params.items()] + list(arguments)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(lines)
    jobs = [job for batch in sweeper.split_arguments(overrides, None) for job in batch]
    try:
        plan = plan_from_sweeper(config, sweeper.ladder, jobs)
    except ConfigError as exc:
        raise SystemExit(f"glmlab: ladder: {exc}") from None
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(_naming_config(config, params, plan), sweep_dir / MULTIRUN)
    excluded = set(config.hydra.job.config.override_dirname.exclude_keys)
    ladder_file = sweep_dir / LADDER_FILE
    write_json_atomic(ladder_file, {"plan": plan.to_dict(), "phase": 1})
    async_launcher = submits_only(config)
    # Jobs an earlier `glmlab submit` queued are waited for, never submitted twice.
    queued = queued_runs(sweep_dir, excluded) if async_launcher else set()

    grid, waiting = _to_launch([job for *_, job in plan.grid_jobs()], sweep_dir, excluded, queued)
    log.info(
        "ladder: phase 1, %d of %d grid runs to run (%d variants x %d rungs x %d learning rates, seed %s)%s",
        len(grid),
        len(plan.grid_jobs()),
        len(plan.variants),
        len(plan.rungs),
        len(plan.lr_grid),
        ", ".join(map(str, plan.grid_seeds())),
        f"; {waiting} still queued or running" if waiting else "",
    )
    returns = _launch(sweeper, grid, 0)
    if async_launcher and (grid or waiting):
        said = f"{len(grid)} grid runs submitted" + (
            f", {waiting} submitted earlier still queued or running" if waiting else ""
        )
        print(
            f"glmlab: ladder: phase 1: {said}; once they finished (glmlab status {sweep_dir}), "
            "rerun the same command to choose the learning rates and submit phase 2 (the seeds)",
            flush=True,
        )
        return returns
    chosen = choices(plan, sweep_dir, excluded)
    plan.chosen = {arm: c.lr for arm, c in chosen.items() if c.lr is not None}
    for arm, c in chosen.items():
        if c.lr is None:
            log.error("ladder: %s has no learning rate (%s): its seeds are not run", arm, c.problem)
        elif c.warning:
            log.warning("ladder: %s: lr %g; %s", arm, c.lr, c.warning)
    write_json_atomic(ladder_file, {"plan": plan.to_dict(), "phase": 2})
    seeds, waiting = _to_launch([job for *_, job in plan.seed_jobs()], sweep_dir, excluded, queued)
    log.info(
        "ladder: phase 2, %d of %d seed runs to run%s",
        len(seeds),
        len(plan.seed_jobs()),
        f"; {waiting} still queued or running" if waiting else "",
    )
    returns += _launch(sweeper, seeds, len(plan.grid_jobs()))
    if async_launcher and (seeds or waiting):
        print(
            f"glmlab: ladder: phase 2: {len(seeds)} seed runs submitted"
            + (f", {waiting} submitted earlier still queued or running" if waiting else "")
            + f"; once they finished, `glmlab collect {sweep_dir}` writes the report",
            flush=True,
        )
    return returns
