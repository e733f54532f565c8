"""A ladder sweep without training, for the report's tests: glmlab's ladder sweeper runs
its two phases through a fake launcher that writes each run's directory with metrics from a
known truth (a power law in the run's compute, an lr penalty, seed noise)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

from glmlab.io import write_json_atomic
from glmlab.ladder.compute import ModelShape, non_embedding_params
from glmlab.ladder.sweep import sweep_ladder
from glmlab.runs.layout import EVAL_ITEMS, HYDRA_OVERRIDES
from glmlab.runs.naming import variant_overrides
from glmlab.runs.result import RunResult, write_result

LADDER = {
    "rungs": [
        {"name": "s", "n_layers": 2, "dim": 32, "n_heads": 2},
        {"name": "m", "n_layers": 2, "dim": 48, "n_heads": 3},
        {"name": "l", "n_layers": 2, "dim": 64, "n_heads": 4},
        {"name": "xl", "n_layers": 2, "dim": 96, "n_heads": 4},
    ],
    "tokens_per_param": 20,
    "lr_grid": [1e-3, 3e-3, 1e-2],
    "tuning_seed": 1000,
    "bootstrap": 20,
    "holdout": "last",
}
BASELINE = "objective.shuffle_spans=true"
PER_STEP = 16 * 128


def pure_power(variant: bool, c: float) -> float:
    """The default world's mean loss: a pure power law in C, the variant 3% lower."""
    return 60.0 * c**-0.08 * (0.97 if variant else 1.0)


def world(mean_loss: Callable[[bool, float], float] = pure_power) -> Callable:
    """A world whose mean loss at compute C is ``mean_loss(variant, C)``; see :func:`truth`."""
    return lambda values: truth(values, mean_loss)


def truth(
    values: dict[str, str], mean_loss: Callable[[bool, float], float] = pure_power
) -> dict[str, float]:
    """A run's metrics: the mean loss of its variant (shuffle off) at its compute, an lr
    penalty quadratic in log lr around a best lr falling with width, seed noise 0.01
    nats; cloze accuracy a sigmoid of the loss above chance 0.25."""
    dim = int(values["model.dim"])
    n = non_embedding_params(ModelShape(int(values["model.n_layers"]), dim))
    c = 6.0 * n * int(values["train.max_steps"]) * PER_STEP
    variant = values["objective.shuffle_spans"].lower() == "false"
    best = 3e-3 * 48 / dim
    lr = float(values["train.lr"])
    seed = int(values["seed"])
    rng = np.random.default_rng([seed, dim, int(variant), int(lr * 1e6)])
    loss = mean_loss(variant, c)
    loss += 0.05 * math.log(lr / best) ** 2 + rng.normal(0, 0.01)
    acc = 0.25 + 0.75 / (1.0 + math.exp(2.0 * (loss - 4.6))) + rng.normal(0, 0.005)
    return {"flops": c, "infill_token_loss": loss, "cloze_acc": acc, "final_val_loss": loss - 0.3}


class FakeLauncher:
    def __init__(
        self,
        sweep_dir: Path,
        world: Callable[[dict[str, str]], dict[str, float]],
        fail: Callable[[dict[str, str]], str | None],
    ) -> None:
        self.sweep_dir, self.world, self.fail, self.batches = sweep_dir, world, fail, []

    def launch(self, batch: list[list[str]], initial_job_idx: int) -> list[Any]:
        self.batches.append([list(j) for j in batch])
        for job in batch:
            finish(self.sweep_dir, job, self.world, self.fail)
        return []


def finish(sweep_dir: Path, job: list[str], world: Callable, fail: Callable) -> None:
    """Write the run directory a finished job leaves (its overrides and result.json)."""
    values = dict(o.split("=", 1) for o in job)
    run_dir = sweep_dir / ("run_" + "_".join(sorted(job)).replace("/", "-").replace("=", "-"))
    (run_dir / HYDRA_OVERRIDES).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / HYDRA_OVERRIDES).write_text(yaml.safe_dump(list(job)))
    w = world(values)
    status = fail(values) or "completed"
    steps = int(values["train.max_steps"])
    result = RunResult(
        status=status,
        overrides=sorted(job),
        variant=variant_overrides(list(job)),
        seed=int(values["seed"]),
        step=steps,
        compute={
            "flops": w["flops"],
            "total_params": 50_000 + 100 * int(values["model.dim"]),
            "tokens_per_param": 3.0,
            "data": {"unique_tokens": 10_000_000, "examples": 80_000, "epochs": 0.4},
        },
    )
    if status == "completed":
        result.final_val_loss = w["final_val_loss"]
        result.eval = {k: w[k] for k in ("infill_token_loss", "cloze_acc")}
        references = {"chance": {"cloze_acc": 0.25}, "unigram": {"infill_token_loss": 9.0}}
        write_json_atomic(run_dir / EVAL_ITEMS, {"reference_metrics": references})
    else:
        result.error = "out of memory (fake)"
    write_result(run_dir, result)


def run_ladder(
    sweep_dir: Path,
    ladder: dict[str, Any] | None = None,
    *,
    world: Callable[[dict[str, str]], dict[str, float]] = truth,
    fail: Callable[[dict[str, str]], str | None] = lambda v: None,
    seeds: str = "0,1,2",
) -> SimpleNamespace:
    """Run the ladder sweeper's phases into ``sweep_dir``; return the fake sweeper."""
    config = OmegaConf.create(
        {
            "train": {"batch_size": 16, "grad_accum": 1, "warmup_steps": 2},
            "data": {"seq_len": 128},
            "model": {"ffn": "gelu", "ffn_mult": 4},
            "report": {"baseline": BASELINE, "metric": ["infill_token_loss", "cloze_acc"]},
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "job": {"config": {"override_dirname": {"exclude_keys": ["experiment"]}}},
                "launcher": {"_target_": "basic"},
                "sweeper": {"params": {}},
            },
        }
    )
    s = SimpleNamespace(
        config=config,
        params={"objective.shuffle_spans": "true,false", "seed": seeds},
        ladder=ladder or LADDER,
        hydra_context=SimpleNamespace(config_loader=None),
        split_arguments=BasicSweeper.split_arguments,
        validate_batch_is_legal=lambda batch: None,
        launcher=FakeLauncher(sweep_dir, world, fail),
    )
    sweep_ladder(s, [])
    return s
