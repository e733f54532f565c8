"""One run of a sweep: train, and record the outcome in ``result.json`` whatever happens.

A failed or diverged run returns normally with its status, error and step recorded, so
that Hydra's sweeper never aborts the other runs of a multirun. A run directory that
already holds a finished result (completed or diverged) of the same config is skipped; an
unfinished one resumes from its checkpoint; one made with another config is refused,
restarted or resumed as ``run.on_change`` says (docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from glmlab.config.rules import ConfigError
from glmlab.config.spec import RunSpec, parse_config
from glmlab.harness.run import check_tasks, missing_tasks, run_settings, score_at_end, score_run
from glmlab.io import DiskFullError, clean_stale_temps, write_text_atomic
from glmlab.ladder.compute import MAX_EPOCHS, compute_record, data_use, scored_fraction
from glmlab.runs import provenance
from glmlab.runs.identity import (
    ConfigChanged,
    config_identity,
    identity_changes,
    plugin_versions,
    read_identity,
    write_identity,
)
from glmlab.runs.layout import (
    CHECKPOINT,
    CONFIG,
    ERROR_LOG,
    FINISHED,
    RESULT,
    STALE_DIR,
    RunStatus,
    move_aside,
)
from glmlab.runs.lock import RunLock
from glmlab.runs.metrics import last_step
from glmlab.runs.naming import job_swept_overrides, variant_overrides
from glmlab.runs.result import RunResult, one_line, read_result, write_result
from glmlab.runs.run_log import ON_CONSOLE, RunLog, write_hydra_records
from glmlab.runs.trackers import Trackers
from glmlab.train.checkpoint import checkpoint_mismatch

__all__ = ["execute_run"]

log = logging.getLogger("glmlab")


def _on_change(spec: RunSpec, sweep: bool) -> str:
    """``run.on_change`` (checked by parse_config): refuse (a single run's default),
    restart (a sweep's), resume."""
    return spec.run.on_change or ("restart" if sweep else "refuse")


def _settle_identity(
    run_dir: Path, identity: dict[str, Any], policy: str, *, is_main: bool
) -> list[str]:
    """Compare the run directory's identity with ``identity``; apply ``policy`` to a
    change. Returns the changes that are accepted (resume), [] when none or restarted."""
    old = read_identity(run_dir)
    if old is None or old.get("fingerprint") == identity["fingerprint"]:
        return []
    changes = identity_changes(old, identity)
    if not changes:  # a directory from before identities, with the same config
        return []
    shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
    if policy == "refuse":
        raise ConfigChanged(
            f"run directory {run_dir} holds a run made with another config ({shown}). "
            "To start afresh, rerun with run.on_change=restart (the old run is moved to "
            f"{run_dir / STALE_DIR}/) or give another directory; to continue the old run "
            "with the new values, rerun with run.on_change=resume"
        )
    if policy == "restart":
        if not is_main:  # rank 0 moves the old run; the others wait for it in the trainer
            return []
        dest = move_aside(run_dir)
        log.warning("config changed (%s): the old run is moved to %s; starting afresh", shown, dest)
        return []
    log.warning("config changed (%s): resuming the old run with the new values", shown)
    return changes


def tracker_variant(overrides: list[str]) -> list[str]:
    """How trackers name the run's variant: the keys its sweep varies, else its overrides."""
    swept = job_swept_overrides()
    return swept if swept is not None else variant_overrides(overrides)


def execute_run(
    cfg: DictConfig, run_dir: str | Path, overrides: list[str], *, sweep: bool = False
) -> RunResult:
    """Train the composed config in ``run_dir`` and return (and write) its result. In a
    run of several processes every rank trains and only rank 0 writes files.

    Before any data is loaded the config is checked (types and ranges), the run directory
    is locked (a second process waits) and its identity compared: a finished run of the
    same config is skipped, another config is handled as ``run.on_change`` says. A failure
    that happens before the directory is claimed (a bad value, a refused change) writes
    nothing into a directory that already holds a run."""
    from glmlab.cluster.exit_reason import failure_status, interruption, slurm_job
    from glmlab.train.distributed import job_logs, process_ranks

    run_dir = Path(run_dir)
    is_main = process_ranks()[0] == 0
    result = RunResult(
        status=RunStatus.FAILED.value,
        seed=cfg.get("seed"),
        overrides=sorted(overrides),
        variant=variant_overrides(overrides),
        run_dir=str(run_dir),
        job_logs=job_logs(),  # submitit's stdout/stderr files of this job, if it ran one
        slurm_job=slurm_job(),  # {job_id, restarts}: the same run directory across requeues
        provenance=provenance.at_start(cfg),  # code, plugins, libraries, machine, times
    )
    started = time.perf_counter()
    # claimed: may write run_dir; trackers: closed whatever happens (preempted: as stopped)
    # log: the run's app.log, written once the directory is claimed (RunLog)
    state: dict[str, Any] = {"trainer": None, "trackers": None, "claimed": False}
    state["log"] = run_log = RunLog(enabled=is_main)

    def failed(exc: Exception) -> None:
        # The step the run directory holds: its checkpoint's once the trainer has read or
        # written one (a checkpoint write that failed never counts), else the last logged
        # step (a failed resume never records step 0).
        saved = getattr(state["trainer"], "saved_step", None)
        result.status = failure_status(exc).value  # submitit's "timed-out too many times"
        result.error = f"{type(exc).__name__}: {exc}"
        result.step = saved if saved is not None else last_step(run_dir)
        result.wall_time_s = round(time.perf_counter() - started, 2)
        log.error("run %s failed: %s", run_dir, one_line(result.error))
        if is_main and state["claimed"]:
            _record(run_dir, result, traceback.format_exc())
        else:
            result.recorded = False  # the directory holds another run: left untouched

    if not sweep and _refused(cfg, run_dir, result, is_main=is_main):
        return result
    try:
        with RunLock(run_dir) if is_main else contextlib.nullcontext():
            try:
                return _train(cfg, run_dir, result, state, sweep=sweep, is_main=is_main)
            except SystemExit:
                # A preemption signal stopped training after its checkpoint: say why, exit.
                trainer = state["trainer"]
                received = getattr(getattr(trainer, "preemption", None), "received", None)
                if is_main and received is not None:
                    said = interruption(received)
                    result.status, result.error = said["status"], said["error"]
                    result.step = trainer.step
                    _record(run_dir, result, None)
                raise
            except Exception as exc:
                failed(exc)  # recorded while the lock is held
    except Exception as exc:  # the lock could not be taken (an unwritable directory)
        failed(exc)
    finally:
        if state["trackers"] is not None:
            state["trackers"].finish(result)
        if state["trainer"] is not None:
            state["trainer"].dist.close()
        run_log.close()
    return result


def _refused(cfg: DictConfig, run_dir: Path, result: RunResult, *, is_main: bool) -> bool:
    """A single run whose config breaks a rule: True after recording the error in
    ``result`` only (``recorded: False``) and removing the run directory if Hydra's making
    of it was all it held, so that a refused run leaves nothing behind. A sweep's run
    records the failure in its directory instead (its report and status list it)."""
    try:
        parse_config(cfg)
    except ConfigError as exc:
        result.error, result.recorded = f"{type(exc).__name__}: {exc}", False
        log.error("run %s refused: %s", run_dir, one_line(result.error))
        if is_main:
            with contextlib.suppress(OSError):  # not empty: another run's, left untouched
                run_dir.rmdir()
        return True
    return False


def _train(
    cfg: DictConfig,
    run_dir: Path,
    result: RunResult,
    state: dict[str, Any],
    *,
    sweep: bool,
    is_main: bool,
) -> RunResult:
    """:func:`execute_run`'s work under the lock: check, settle the identity, train, record."""
    from glmlab.train.distributed import process_ranks
    from glmlab.train.trainer import Diverged, Trainer

    started = time.perf_counter()
    state["claimed"] = read_identity(run_dir) is None and not (run_dir / RESULT).exists()
    spec = parse_config(cfg)  # every value checked before anything is written or loaded
    policy = _on_change(spec, sweep)
    container = OmegaConf.to_container(cfg, resolve=True)
    identity = config_identity(container, plugin_versions(container))
    accepted = _settle_identity(run_dir, identity, policy, is_main=is_main)
    finished = read_result(run_dir)
    if (
        accepted
        and finished is not None
        and finished.finished
        and not (run_dir / CHECKPOINT).exists()
    ):
        # Continuing needs the resumable state, which a finished run kept only with
        # train.keep_checkpoint=last: never train from scratch under the old run's name.
        raise ConfigChanged(
            f"run directory {run_dir} holds a finished run without its resumable state "
            "(checkpoint.pt; train.keep_checkpoint=final removes it), so run.on_change=resume "
            "cannot continue it: rerun with run.on_change=restart, or train with "
            "train.keep_checkpoint=last to extend runs later"
        )
    # lm-evaluation-harness tasks (docs/HARNESS.md): checked before anything is trained
    harness = run_settings(spec) if is_main and process_ranks()[1] == 1 else None
    previous = read_result(run_dir)
    if previous is not None and previous.finished and not accepted:
        missing = missing_tasks(run_dir, harness) if harness else []
        if missing and previous.status == RunStatus.COMPLETED:
            # Tasks added to a finished run: scored on its weights, never retrained.
            more = dataclasses.replace(harness, tasks=tuple(missing))
            check_tasks(more)
            score_run(run_dir, more, progress=spec.train.progress)
        log.info("run %s already %s: skipped", run_dir, previous.status, extra=ON_CONSOLE)
        return previous
    if harness:
        check_tasks(harness)
    # Before any data: a missing tracker library is an error now, not at step 5,000.
    trackers = Trackers.from_config(
        cfg, run_dir, tracker_variant(result.overrides), enabled=is_main
    )
    state["trackers"] = trackers

    def claim() -> None:  # from here on the directory is this run's
        state["claimed"] = True
        if is_main:
            clean_stale_temps(run_dir)  # left by a process killed mid-write; we hold the lock
            header = f"# overrides: {' '.join(result.overrides)}\n"  # all, fixed ones too
            write_text_atomic(run_dir / CONFIG, header + OmegaConf.to_yaml(cfg, resolve=True))
            write_identity(run_dir, identity, accepted=accepted)
            write_hydra_records(run_dir, cfg)
            state["log"].claim(run_dir)

    if not accepted:
        claim()
    parallel = spec.distributed.parallel
    state["trainer"] = trainer = Trainer(spec, run_dir, parallel=parallel, trackers=trackers)
    _warn_repetition(spec, trainer)
    if accepted:
        # A resume across a change: the weights must fit the new model, checked with the
        # data and model built and before anything is written.
        _check_resumable(trainer, run_dir, accepted)
        claim()
    try:
        outcome = trainer.fit()
        result.status = str(outcome.status)
        result.step = outcome.step
        result.final_val_loss = outcome.final_val_loss
        result.tokens_per_s = outcome.tokens_per_s
        result.n_params = outcome.n_params
        result.attention = outcome.attention
        result.attention_selection = outcome.attention_selection
        result.eval = outcome.eval  # the evaluation suite's final metrics, or None
        # N, D, FLOPs, epochs (glmlab/ladder/compute.py)
        result.compute = _compute(spec, trainer, outcome.step)
        result.stability = outcome.stability  # loss spikes, gradient norms (runs/stability.py)
    except Diverged as exc:
        result.status, result.step, result.error = RunStatus.DIVERGED.value, exc.step, str(exc)
        result.stability = exc.stability  # a diverged run is counted, never dropped
        log.warning("run %s diverged: %s", run_dir, exc)
    if harness and result.status == RunStatus.COMPLETED:
        result.harness_error = score_at_end(run_dir, harness, progress=spec.train.progress)
    result.wall_time_s = round(time.perf_counter() - started, 2)
    if is_main:
        _record(run_dir, result, None)  # a result it could not write is failed (see there)
        if result.status == RunStatus.COMPLETED and spec.train.keep_checkpoint != "last":
            # The outcome is on disk: the resumable state is no longer needed (weights.pt
            # keeps the final weights unless keep_checkpoint=none).
            (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return result


def _compute(spec: RunSpec, trainer: Any, steps: int | None = None) -> dict[str, Any]:
    """result.json's ``compute``: N, D, FLOPs with the run's real vocabulary and parameter
    count, and the epochs over its training split."""
    data, done = trainer.data, spec.train.max_steps if steps is None else steps
    return compute_record(
        spec,
        done,
        vocab_size=data.tokenizer.vocab_size,
        total_params=trainer.n_params,
        train_split=(len(data.train.ids), len(data.train)),
        scored=scored_fraction(trainer.train_source, done),
    )


def _warn_repetition(spec: RunSpec, trainer: Any) -> None:
    """Warn when the planned run repeats its training split more than MAX_EPOCHS times."""
    data = trainer.data
    epochs = data_use(
        unique_tokens=len(data.train.ids),
        examples=len(data.train),
        steps=spec.train.max_steps,
        batch_size=spec.train.batch_size,
        grad_accum=spec.train.grad_accum,
    ).epochs
    if epochs is not None and epochs > MAX_EPOCHS:
        log.warning(
            "this run reads its training split %.1f times (%d steps of %d rows over %d "
            "examples); returns from repeated data fall off past %g epochs (docs/LADDERS.md): "
            "use a larger corpus (e.g. data=installed_docs) or fewer steps",
            epochs,
            spec.train.max_steps,
            spec.train.batch_size * spec.train.grad_accum,
            len(trainer.data.train),
            MAX_EPOCHS,
        )


# Changes that decide the shapes of a run's weights: named when a resume cannot continue.
_SHAPE_KEYS = ("model.", "data.", "positional.", "norm_layout.", "objective.")


def _check_resumable(trainer: Any, run_dir: Path, changes: list[str]) -> None:
    """A resume across ``changes``: the checkpoint's weights must fit the model the new
    config builds, checked before anything is written (ConfigChanged naming the keys)."""
    mismatch = checkpoint_mismatch(run_dir / CHECKPOINT, trainer.model.state_dict())
    if mismatch is None:
        return
    named = [c for c in changes if c.startswith(_SHAPE_KEYS)] or changes
    raise ConfigChanged(
        f"run.on_change=resume cannot continue {run_dir}: its checkpoint does not fit the "
        f"new config ({'; '.join(named)}: {mismatch}); nothing was written. Rerun with "
        "run.on_change=restart (the old run is moved to "
        f"{run_dir / STALE_DIR}/), or without these changes"
    )


def _record(run_dir: Path, result: RunResult, trace: str | None) -> None:
    """Write error.log and result.json; a directory that cannot take the result (read-only,
    full) is reported in the log and the returned result (``recorded`` False), never raised
    from here. A result that claimed a finished run is then a failure: nothing on disk says
    the run finished, and a rerun resumes from its checkpoint (kept) and records it."""
    provenance.at_end(result.provenance, result.attention)  # the end time, the backend that ran
    if trace is not None:
        try:
            write_text_atomic(run_dir / ERROR_LOG, trace)
        except OSError as exc:  # the result is still written if it can be
            log.error("the traceback of run %s is not kept: %s", run_dir, exc)
    try:
        write_result(run_dir, result)
    except OSError as exc:
        result.recorded = False
        note = f"{type(exc).__name__}: {exc}"
        if result.status in FINISHED:
            result.status = RunStatus.FAILED.value
            result.error = f"{note}; the run trained to step {result.step}: rerun to record it"
        elif isinstance(exc, DiskFullError) and "DiskFullError" in (result.error or ""):
            result.error = f"{result.error}; and {RESULT} could not be written either"
        else:
            prior = f"{result.error}; and its" if result.error else "its"
            result.error = f"{prior} {RESULT} could not be written: {note}"
        log.error("could not write the result of run %s: %s", run_dir, note)
