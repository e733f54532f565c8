"""Several processes, one run: process groups, data shards, DDP/FSDP, and preemption.

A run spans several processes when torchrun starts it (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or when a submitit job has several tasks
(Slurm's ``tasks_per_node``/``nodes``, read through
``submitit.helpers.TorchDistributedEnvironment``); otherwise it is one process and nothing
here communicates. torch.distributed talks NCCL between GPUs and gloo on the CPU.

Data: rank ``r`` of ``world`` at optimizer step ``s``, micro-step ``m`` (of ``accum``) takes
batch ``(s * accum + m) * world + r`` of the run's stream. A single process with
``grad_accum = accum * world`` therefore takes the same batches in the same order, and both
compute the gradient of the mean of the per-micro-batch mean losses (each process divides
by its ``accum``, DDP averages over ranks): the same update, up to float summation order.
The same holds across a resume with another (``accum``, ``world``) of the same product.

Only rank 0 writes metrics, checkpoints and results; every rank reads the checkpoint, so the
run directory must be on a filesystem all nodes share (as Slurm sweeps already need).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import torch
import torch.distributed as dist
from torch import nn

from glmlab.config.rules import ConfigError
from glmlab.config.schema import PARALLEL
from glmlab.structures import Batch

log = logging.getLogger("glmlab")


def _submitit_env() -> Any | None:
    """submitit's view of the running job, or None outside a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit  # deferred: only jobs that submitit started need it

    return submitit.JobEnvironment()


def process_ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher set them, before any process group:
    torchrun's variables win over a submitit job's tasks (torchrun inside a Slurm job)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        env = os.environ
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    job = _submitit_env()
    if job is not None:
        return job.global_rank, job.num_tasks, job.local_rank
    return 0, 1, 0


def job_logs() -> dict[str, str] | None:
    """This task's stdout/stderr files when submitit (Slurm or local) runs it, else None."""
    job = _submitit_env()
    if job is None:
        return None
    return {"stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run. With ``world_size == 1`` there is no process
    group and the collectives below return their input."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process created the default group and destroys it
    host_group: Any = None  # gloo group for host-side values (NCCL only moves GPU tensors)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Average ``tensor`` (on this rank's device) over ranks, in place; return it."""
        if self.distributed:
            dist.all_reduce(tensor)  # SUM then divide: gloo has no AVG
            tensor.div_(self.world_size)
        return tensor

    def host_sum(self, values: list[float]) -> list[float]:
        """Sum host-side floats over ranks (float64, through gloo: no device sync)."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, group=self.host_group)
        return t.tolist()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.host_group)
        return bool(t.item())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.host_group)
        return box[0]

    def close(self) -> None:
        """Destroy the process group if this process created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: torch.device) -> DistContext:
    """Join the run's process group when several processes run it (see the module
    docstring); on CUDA, rank ``r`` takes GPU ``local_rank`` of those it sees."""
    rank, world, local_rank = process_ranks()
    if world == 1:
        return DistContext(device)
    if device.type == "cuda":
        # Slurm may show a task every GPU of the node or only its own: both work.
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        if "RANK" not in os.environ:  # a submitit job's tasks: env:// from Slurm's variables
            import submitit

            # overwrite: a MASTER_PORT already set is read in and kept; GPUs are chosen above.
            submitit.helpers.TorchDistributedEnvironment().export(
                set_cuda_visible_devices=False, overwrite=True
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)
    host_group = dist.new_group(backend="gloo") if dist.get_backend() == "nccl" else None
    log.info("rank %d of %d (local rank %d) on %s", rank, world, local_rank, device)
    return DistContext(device, rank, world, local_rank, owns, host_group)


class BatchStream(Protocol):
    """Random-access batches, like :class:`glmlab.objective.batches.BatchSource`."""

    def batch(self, i: int) -> Batch: ...


class RankShard:
    """Rank ``rank`` of ``world``'s view of a batch stream: its batch ``i`` is the
    stream's batch ``i * world + rank`` (random access, like the stream itself)."""

    def __init__(self, source: BatchStream, rank: int, world_size: int) -> None:
        self.source = source
        self.rank = rank
        self.world_size = world_size

    def batch(self, i: int) -> Batch:
        return self.source.batch(i * self.world_size + self.rank)


def shard(source: BatchStream, ctx: DistContext) -> BatchStream:
    """``source`` itself for one process, else this rank's :class:`RankShard` of it."""
    return RankShard(source, ctx.rank, ctx.world_size) if ctx.distributed else source


class _LossModule(nn.Module):
    """``model.loss`` as ``forward``: DDP and FSDP act on the forward of what they wrap."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model.loss(batch)


class ParallelModel:
    """The model as the training loop calls it: itself (one process), DDP, or FSDP2
    (``fully_shard`` per block and at the root, for models that do not fit one device).

    ``loss`` computes the training loss (through the wrapper, so gradients are
    synchronised); ``gradient_sync`` skips that synchronisation on all but the last
    micro-step of an accumulation; state dicts are whole (unsharded) on rank 0.
    """

    def __init__(self, model: nn.Module, ctx: DistContext, kind: str = "ddp") -> None:
        if kind not in PARALLEL:
            raise ConfigError(f"distributed.parallel must be one of {PARALLEL}, got '{kind}'")
        self.model = model
        self.kind = kind if ctx.distributed else "single"
        if self.kind == "single":
            self.loss: Any = model.loss
        elif self.kind == "ddp":
            # No buffer sync per forward: buffers are deterministic, and evaluation
            # (model.loss, outside DDP, unevenly split over ranks) must need no collective.
            self.loss = nn.parallel.DistributedDataParallel(
                _LossModule(model), forward_sync_buffers=False
            )
        else:
            from torch.distributed.fsdp import fully_shard

            for block in model.blocks:
                fully_shard(block)
            # The root holds the embeddings, which the head reuses after forward: sharding
            # the loss module keeps them gathered for the whole loss.
            self.loss = fully_shard(_LossModule(model))

    def gradient_sync(self, enabled: bool) -> contextlib.AbstractContextManager:
        """Context for one micro-step; ``enabled=False`` keeps its gradients local."""
        if self.kind == "ddp" and not enabled:
            return self.loss.no_sync()
        if self.kind == "fsdp":
            self.loss.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()

    def eval_loss(self, batch: Batch) -> torch.Tensor:
        """The loss without gradients; FSDP must gather its shards, so it goes through the
        wrapper and every rank must call this equally often."""
        return self.loss(batch) if self.kind == "fsdp" else self.model.loss(batch)

    def state_dicts(self, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """Whole model and optimizer state (collective under FSDP; only rank 0 gets it)."""
        if self.kind != "fsdp":
            return self.model.state_dict(), optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(self.model, optimizer, options=options)

    def load_state_dicts(
        self, optimizer: torch.optim.Optimizer, model_state: dict, optimizer_state: dict
    ) -> None:
        """Load whole state dicts (every rank passes the same ones). FSDP's optimizer state
        is keyed by parameter name, so an FSDP checkpoint resumes under FSDP."""
        if self.kind != "fsdp":
            self.model.load_state_dict(model_state)
            optimizer.load_state_dict(optimizer_state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(
            self.model,
            optimizer,
            model_state_dict=model_state,
            optim_state_dict=optimizer_state,
            options=StateDictOptions(full_state_dict=True),
        )


def _preemption_signals() -> list[signal.Signals]:
    # SIGTERM: Slurm's preemption and `scontrol requeue`; submitit's own signal (SIGUSR2
    # unless SUBMITIT_PREEMPT_SIGNAL says otherwise): a timeout coming.
    # SIGINT: Ctrl-C takes the same path (checkpoint the step), then exits 130.
    usr = signal.Signals["SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")]
    return [signal.SIGTERM, usr, signal.SIGINT]


class PreemptionGuard:
    """Defers preemption signals to the end of a training step.

    A handler that runs mid-step (submitit's checkpoints the job's call, requeues it and
    exits at once) loses the steps since the last checkpoint. Inside the guard a signal only
    sets a flag; the trainer asks :meth:`requested` after each step (every rank agrees),
    checkpoints, and calls :meth:`stop`, which hands the signal to the handler it had
    replaced: submitit requeues the job (on rank 0) and exits, the default handler ends the
    process. If that handler returns (submitit ignores SIGTERM: Slurm requeues or cancels
    the job itself; ranks other than 0), the process exits with ``SystemExit``, which
    neither the run wrapper nor submitit records as a result, so the requeued job is the
    one that finishes the run.
    """

    def __init__(self, ctx: DistContext) -> None:
        self.ctx = ctx
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionGuard:
        # Signal handlers can only be set from the main thread; elsewhere, no deferral.
        if threading.current_thread() is threading.main_thread():
            for sig in _preemption_signals():
                self._previous[sig] = signal.signal(sig, self._defer)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _defer(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (the last checkpoint stands)
        self.received = signum
        log.warning("%s received: stopping after this step's checkpoint", signal.strsignal(signum))

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:  # None: not set from Python, cannot be put back
                signal.signal(sig, handler)
        self._previous.clear()

    def requested(self) -> bool:
        """Whether any rank has received a preemption signal (collective when distributed)."""
        return self.ctx.any_rank(self.received is not None)

    def stop(self, step: int) -> NoReturn:
        """After the checkpoint of ``step``: pass the signal on, then exit."""
        signum = self.received
        self._restore()
        if signum == signal.SIGINT:
            # Ctrl-C: no traceback, the shell's status for an interrupt.
            print(
                f"glmlab: interrupted (Ctrl-C) after step {step}, which the checkpoint holds; "
                "rerun the same command to resume",
                file=sys.stderr,
            )
            raise SystemExit(130)
        if signum is not None:
            signal.raise_signal(signum)
        raise SystemExit(f"glmlab: preempted after step {step}, which the checkpoint holds")
