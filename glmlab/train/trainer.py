"""The training loop for one run on the CPU, one GPU, or several processes (DDP/FSDP,
see ``glmlab/train/distributed.py``).

A run directory holds ``metrics.jsonl`` (one JSON object per logged step and per
evaluation), ``checkpoint.pt`` (model, optimizer, scheduler, RNG, data position) and, when
the run ends, ``result.json``. Starting a run in a directory with a checkpoint resumes it:
batches are a pure function of (seed, index), so the data position is one integer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from glmlab.assembly import build_run, resolve_device
from glmlab.config.spec import RunSpec
from glmlab.eval.metrics import metrics_from_items
from glmlab.eval.suite import reference_items
from glmlab.io import append_line, write_json_atomic
from glmlab.objective.batches import make_loader
from glmlab.runs.device_memory import reset_peak_memory
from glmlab.runs.layout import CHECKPOINT, EVAL_ITEMS, METRICS, WEIGHTS, RunStatus
from glmlab.runs.metrics import repair_metrics
from glmlab.runs.run_log import ON_CONSOLE
from glmlab.runs.trackers import Trackers
from glmlab.train.checkpoint import load_checkpoint, save_checkpoint
from glmlab.train.distributed import ParallelModel, PreemptionGuard, init_distributed, shard
from glmlab.train.record import TrainingRecord, Window
from glmlab.train.schedule import lr_factor

log = logging.getLogger("glmlab")


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; ``stability``: the run's counts up to then."""

    def __init__(self, step: int, loss: float, stability: dict[str, float] | None = None) -> None:
        super().__init__(f"loss is {loss} at step {step}")
        self.step, self.stability = step, stability


@dataclass
class TrainOutcome:
    status: RunStatus  # completed | stopped (stop_after, preemption)
    step: int
    final_val_loss: float | None
    tokens_per_s: float | None
    n_params: int
    attention: str
    error: str | None = None
    eval: dict[str, float] | None = None  # the final evaluation suite (glmlab/eval/suite.py)
    attention_selection: dict[str, Any] | None = None  # how ``auto`` chose (attention_select)
    stability: dict[str, float] | None = None  # loss spikes, gradient norms (runs/stability.py)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # As the reference: every parameter except biases and LayerNorm weights (the 1-D ones)
    # is decayed, the token and position embeddings included (tests/test_fidelity.py).
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """Trains one :class:`RunSpec` in ``run_dir``; see the module docstring."""

    def __init__(
        self,
        spec: RunSpec,
        run_dir: str | Path,
        *,
        parallel: str = "ddp",
        trackers: Trackers | None = None,
    ) -> None:
        self.spec = spec
        self.trackers = trackers or Trackers()  # experiment trackers (glmlab/runs/trackers.py)
        t = spec.train
        if t.threads:
            torch.set_num_threads(t.threads)
        # Several processes (torchrun, a multi-task Slurm job): see glmlab/train/distributed.py.
        self.dist = init_distributed(resolve_device(t.device))
        self.device = self.dist.device
        # Rank 0's directory is the run's: ranks started apart may name theirs differently.
        self.run_dir = Path(self.dist.broadcast(str(run_dir)))
        self.run_dir.mkdir(parents=True, exist_ok=True)

        # Data, batches, model (seeded by spec.seed) and the evaluation suite, in one pass
        # (glmlab/assembly/run.py). ``auto`` on CUDA: rank 0 times the backends on the run's
        # first batch, all ranks follow. The suite is built now, so a corpus too small for
        # it fails before training, not after.
        self.parts = build_run(
            spec, self.device, is_main=self.dist.is_main, broadcast=self.dist.broadcast
        )
        self.data = self.parts.data
        self.model = self.parts.model
        self.train_source = self.parts.batches.train
        self.val_source = self.parts.batches.validation
        self.eval_suite = self.parts.eval_suite
        # Throughput per logged window and the last validation loss, kept as they are
        # logged; a resume restores them from the rows that agree with its checkpoint.
        self.record = TrainingRecord()
        self.n_params = self.model.num_parameters()
        log.info(
            "model: %s parameters (%s without embeddings), attention backend: %s",
            f"{self.n_params:,}",
            f"{self.model.num_parameters(exclude_embeddings=True):,}",
            self.model.attention_name,
        )
        # FSDP shards the parameters in place: wrap before the optimizer takes them.
        self.parallel = ParallelModel(self.model, self.dist, parallel)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, t.weight_decay),
            lr=t.lr,
            betas=(t.beta1, t.beta2),
            fused=fused,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(
                s, warmup_steps=t.warmup_steps, max_steps=t.max_steps, min_lr_ratio=t.min_lr_ratio
            ),
        )
        use_compile = t.compile if t.compile is not None else self.device.type == "cuda"
        self.forward_loss = torch.compile(self.parallel.loss) if use_compile else self.parallel.loss
        self.step = 0
        self.saved_step: int | None = None  # the step checkpoint.pt holds (None: not read)
        # What accumulates between log lines: checkpointed, so a resumed run logs exactly
        # what an uninterrupted one does.
        self.window = Window(self.device)

    # -- state ---------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()  # fp32 on the CPU: exact and deterministic

    def save(self) -> None:
        # Collective: FSDP gathers its shards; the window becomes the ranks' mean, from which
        # every rank (and a resume) carries on.
        model_state, optimizer_state = self.parallel.state_dicts(self.optimizer)
        self.dist.mean_(self.window.loss)
        if not self.dist.is_main:
            return
        state = {
            "model": model_state,
            "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "micro_batch": self.step * self.spec.train.grad_accum,
            "rng_cpu": torch.get_rng_state(),
            "window": self.window.state(),
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        save_checkpoint(self.run_dir / CHECKPOINT, state)
        self.saved_step = self.step

    def save_final_weights(self) -> None:
        """The model's weights alone, to weights.pt (what ``glmlab infill`` loads)."""
        model_state, _ = self.parallel.state_dicts(self.optimizer)  # collective under FSDP
        if self.dist.is_main:
            save_checkpoint(self.run_dir / WEIGHTS, {"model": model_state, "step": self.step})

    def try_resume(self) -> bool:
        path = self.run_dir / CHECKPOINT
        resumed = path.exists()
        if resumed:
            state = load_checkpoint(path, map_location=self.device)
            self.parallel.load_state_dicts(self.optimizer, state["model"], state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = int(state["step"])
            self.window.load(state["window"])
            torch.set_rng_state(state["rng_cpu"].cpu())
            if "rng_cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
            log.info("resumed from %s at step %d", path, self.step, extra=ON_CONSOLE)
        self.saved_step = self.step
        # metrics.jsonl agrees with the checkpoint (step 0 without one): rows logged after it
        # would be logged again, a torn line would be glued to the next row.
        # The rows it keeps are the in-memory record's start (rank 0 reads; every rank gets it).
        rows = []
        if self.dist.is_main:
            final = self.step >= self.spec.train.max_steps  # the final suite runs again
            rows = repair_metrics(self.run_dir / METRICS, self.step, drop_eval_at_step=final)
        self.record = self.dist.broadcast(TrainingRecord.from_rows(rows))
        return resumed

    def _log(self, row: dict[str, Any]) -> None:
        self.record.add(row)  # every rank: its rows hold the ranks' common values
        if not self.dist.is_main:
            return
        append_line(self.run_dir / METRICS, json.dumps(row, sort_keys=True))
        self.trackers.log_row(row)

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        total, weight = 0.0, 0.0
        # Rank r takes batches r, r + world, ...; every rank runs ceil(n / world) forwards
        # (FSDP gathers parameters in each), the ones past n with weight 0.
        n_batches, world = self.spec.train.eval_batches, self.dist.world_size
        for i in range(self.dist.rank, -(-n_batches // world) * world, world):
            batch = self.val_source.batch(i % n_batches).to(self.device)
            n = batch.loss_mask.sum() if i < n_batches else 0.0
            with self._autocast():
                loss = self.parallel.eval_loss(batch)
            total += float(loss) * float(n)
            weight += float(n)
        total, weight = self.dist.host_sum([total, weight])
        self.model.train()
        return total / max(weight, 1.0)

    def run_eval_suite(self, *, final: bool = False) -> dict[str, float] | None:
        """The evaluation suite on the current weights: its row in metrics.jsonl holds the
        (deterministic) task metrics; the returned dict adds throughput and peak memory.
        The ``final`` one also writes the per-item scores and the reference levels
        (chance, unigram, the untrained model) to eval_items.json."""
        if self.parallel.kind == "fsdp":
            # The suite calls the bare model, whose root parameters FSDP keeps sharded.
            log.warning("evaluation suite skipped: not supported under FSDP")
            return None
        started = time.perf_counter()
        suite = self.eval_suite
        if suite is None:
            raise RuntimeError("the evaluation suite runs only with train.eval_suite=true")
        items = suite.score_items(
            self.model, progress=self.spec.train.progress and self.dist.is_main
        )
        metrics = metrics_from_items(items)
        self._log({"step": self.step, "eval": metrics})
        log.info("evaluation suite at step %d: %.1f s", self.step, time.perf_counter() - started)
        if final and self.dist.is_main:
            untrained = self.parts.initial_model()  # the weights this run started from
            tokenizer = self.data.tokenizer
            reference = reference_items(suite, self.data.train.ids, tokenizer.vocab_size, untrained)
            write_json_atomic(
                self.run_dir / EVAL_ITEMS,
                {
                    "step": self.step,
                    "tasks": items,
                    "reference": reference,
                    "reference_metrics": {k: metrics_from_items(v) for k, v in reference.items()},
                },
            )
        return {**metrics, **self.record.efficiency(self.device)}

    # -- training ------------------------------------------------------------------------
    def fit(self) -> TrainOutcome:
        """Train from the checkpoint, if any, to ``max_steps`` (or ``stop_after`` steps on).
        A preemption signal ends the process after the current step's checkpoint."""
        self.preemption = PreemptionGuard(self.dist)
        with self.preemption:
            return self._fit()

    def _fit(self) -> TrainOutcome:
        t = self.spec.train
        reset_peak_memory(self.device)
        self.try_resume()
        self.trackers.start(self.step)
        end = t.max_steps if t.stop_after is None else min(t.max_steps, self.step + t.stop_after)
        if self.device.type == "cuda" and self.spec.data.workers == 0:
            log.warning(
                "data.workers=0: batches are built in the training loop, between GPU steps; "
                "data.workers=1 (or more) builds them in a pinned-memory loader process"
            )
        loader = make_loader(
            shard(self.train_source, self.dist),
            start=self.step * t.grad_accum,
            stop=end * t.grad_accum,
            workers=self.spec.data.workers,
            pin_memory=self.device.type == "cuda",
        )
        batches = iter(loader)
        self.model.train()
        val_loss: float | None = None
        tok_s: float | None = None
        window_start = time.perf_counter()
        # A bar on a terminal; in a log file (stderr not a terminal) plain lines instead of
        # the bar's carriage-return updates, about ten per run.
        show = t.progress and self.dist.is_main
        on_terminal = sys.stderr.isatty()
        bar = tqdm(
            total=t.max_steps,
            initial=self.step,
            desc="train",
            unit="step",
            leave=True,
            disable=not (show and on_terminal),
        )
        plain_every = t.log_interval * max(1, t.max_steps // (10 * t.log_interval))
        while self.step < end:
            for m in range(t.grad_accum):
                batch = next(batches).to(self.device)
                # Ranks all-reduce gradients once per step: on its last micro-step.
                with self.parallel.gradient_sync(m == t.grad_accum - 1):
                    with self._autocast():
                        loss = self.forward_loss(batch) / t.grad_accum
                    loss.backward()
                self.window.loss += loss.detach()
                self.window.tokens += int(batch.layout.batch_size * batch.layout.seq_len)
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.window.add_grad_norm(norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.window.steps += 1
            bar.update(1)

            if self.step % t.log_interval == 0 or self.step == t.max_steps:
                # The only host sync per window: the loss and the largest gradient norm.
                loss_sum, grad_norm = torch.stack(
                    [self.dist.mean_(self.window.loss), self.window.grad]
                ).tolist()
                mean_loss = loss_sum / self.window.steps
                if not math.isfinite(mean_loss):
                    bar.close()
                    raise Diverged(
                        self.step, mean_loss, self.record.stability.summary(diverged=True)
                    )
                elapsed = time.perf_counter() - window_start
                # Every rank's batches have the same shape: the run's throughput is world x this.
                tok_s = self.window.tokens * self.dist.world_size / max(elapsed, 1e-9)
                self._log(
                    {
                        "step": self.step,
                        "loss": mean_loss,
                        "lr": self.scheduler.get_last_lr()[0],
                        "tokens_per_s": tok_s,
                        "grad_norm": grad_norm,  # the window's largest, before clipping
                    }
                )
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                if (
                    show
                    and not on_terminal
                    and (self.step % plain_every == 0 or self.step == t.max_steps)
                ):
                    msg = "step %d/%d: loss %.4f, %.0f tokens/s"
                    log.info(msg, self.step, t.max_steps, mean_loss, tok_s)
                self.window.reset()
                window_start = time.perf_counter()
            if self.step % t.eval_interval == 0 or self.step == t.max_steps:
                val_loss = self.evaluate()
                self._log({"step": self.step, "val_loss": val_loss})
            if t.eval_suite and t.eval_suite_interval and self.step % t.eval_suite_interval == 0:
                if self.step < t.max_steps:  # the final one runs below, after the checkpoint
                    self.run_eval_suite()
            preempted = self.preemption.requested() and self.step < end
            if preempted or self.step % t.checkpoint_interval == 0 or self.step == end:
                self.save()
            if preempted:
                bar.close()
                self.preemption.stop(self.step)
        bar.close()
        val_loss = self.record.val_loss  # this session's last, or the one before the resume
        status = RunStatus.COMPLETED if self.step >= t.max_steps else RunStatus.STOPPED
        # After the last checkpoint: a run that dies in the suite resumes into the suite alone.
        suite = (
            self.run_eval_suite(final=True)
            if t.eval_suite and status == RunStatus.COMPLETED
            else None
        )
        if status == RunStatus.COMPLETED and t.keep_checkpoint == "final":
            self.save_final_weights()  # run.py removes checkpoint.pt once result.json is written
        return TrainOutcome(
            status,
            self.step,
            val_loss,
            tok_s,
            self.n_params,
            self.model.attention_name,
            eval=suite,
            attention_selection=self.model.attention_selection.as_dict(),
            stability=self.record.stability.summary(diverged=False),
        )
