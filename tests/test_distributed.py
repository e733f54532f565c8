"""Several processes, one run: DDP and FSDP over two gloo processes (torchrun, and a 2-task
submitit job) equal one process with the same global batch; preemption loses no step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.config.spec import parse_config
from glmlab.objective.batches import make_loader
from glmlab.train.checkpoint import load_checkpoint
from glmlab.train.distributed import RankShard
from glmlab.train.trainer import Trainer
from tests.conftest import TINY, run_glmlab

# Every run below takes 4 micro-batches per step (grad_accum x processes). Three evaluation
# batches split unevenly over two ranks; one thread each: two ranks share two cores.
# keep_checkpoint=last: the tests compare the final resumable checkpoints.
RUN = [*TINY, "train.eval_batches=3", "train.threads=1", "train.keep_checkpoint=last"]


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The training loop's metrics.jsonl rows without throughput; the evaluation suite's
    rows are left out (FSDP runs skip the suite, which has its own tests)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("tokens_per_s", None)
    return [row for row in rows if "eval" not in row]


def assert_same_run(expected: Path, actual: Path, *, exact: bool = False) -> None:
    """Same metrics rows and final weights; equal, or within float summation-order error."""
    a, b = metric_rows(expected), metric_rows(actual)
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert rb == (ra if exact else pytest.approx(ra, rel=1e-5, abs=1e-6))
    wa, wb = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (expected, actual))
    assert wa.keys() == wb.keys()
    for name in wa:
        if exact:
            assert torch.equal(wa[name], wb[name]), name
        else:
            torch.testing.assert_close(wb[name], wa[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one process, grad_accum=4."""
    cwd = tmp_path_factory.mktemp("one_process")
    proc = run_glmlab([*RUN, "train.grad_accum=4", "hydra.run.dir=run"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "run"


def test_rank_shards_interleave_into_the_one_process_stream():
    class Indices:
        def batch(self, i: int) -> int:
            return i

    accum, world, steps = 2, 2, 3
    one = list(
        make_loader(Indices(), start=0, stop=steps * accum * world, workers=0, pin_memory=False)
    )
    ranks = [
        list(
            make_loader(
                RankShard(Indices(), r, world),
                start=0,
                stop=steps * accum,
                workers=0,
                pin_memory=False,
            )
        )
        for r in range(world)
    ]
    # Rank r at step s, micro-step m takes batch (s * accum + m) * world + r.
    for s in range(steps):
        for m in range(accum):
            for r in range(world):
                assert ranks[r][s * accum + m] == (s * accum + m) * world + r
    # Per step, the ranks' micro-batches together are the one process's micro-batches.
    for s in range(steps):
        mine = sorted(ranks[r][s * accum + m] for r in range(world) for m in range(accum))
        assert mine == one[s * accum * world : (s + 1) * accum * world]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_torchrun_two_processes_equal_one_process(one_process, tmp_path, parallel):
    def torchrun(*overrides: str) -> str:
        proc = subprocess.run(
            [
                *(
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node=2",
                ),
                *("-m", "glmlab", *RUN, "train.grad_accum=2", f"distributed.parallel={parallel}"),
                *("hydra.run.dir=run", *overrides),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc.stdout + proc.stderr

    if parallel == "fsdp":
        # Interrupted after step 3 (mid logging window) and resumed: every rank loads rank
        # 0's whole state dicts, which FSDP shards again (DDP's are plain ones).
        assert "rank 1 of 2" in torchrun("train.stop_after=3")
        assert "resumed from" in torchrun()
    else:
        assert "rank 1 of 2" in torchrun()
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed"
    assert result["final_val_loss"] == pytest.approx(
        json.loads((one_process / "result.json").read_text())["final_val_loss"], rel=1e-5
    )
    assert_same_run(one_process, tmp_path / "run")  # rank 1 wrote no metrics rows


@pytest.mark.slow
def test_submitit_job_with_two_tasks_trains_ddp(one_process, tmp_path):
    # submitit_local runs a job's tasks like Slurm does: TorchDistributedEnvironment.
    proc = run_glmlab(
        [
            "-m",
            *RUN,
            "train.grad_accum=2",
            "name=tasks",
            "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=2",
            "hydra.launcher.timeout_min=5",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep = tmp_path / "sweeps" / "tasks"
    (run_dir,) = (p.parent for p in sweep.glob("*/result.json"))
    assert_same_run(one_process, run_dir)
    logs = json.loads((run_dir / "result.json").read_text())["job_logs"]
    assert Path(logs["stdout"]).is_relative_to(sweep / ".submitit")
    task1 = Path(logs["stdout"].replace("_0_log.out", "_1_log.out")).read_text()
    assert "rank 1 of 2" in task1
    assert (sweep / "report.md").exists()  # the callback ran under this launcher too


def _config(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=[*RUN, *overrides])


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR2"])  # Slurm's preemption, submitit's timeout
def test_preemption_signal_checkpoints_the_step_and_resume_equals_uninterrupted(tmp_path, name):
    sig = signal.Signals[name]
    spec = parse_config(_config("train.max_steps=10", "train.checkpoint_interval=100"))
    Trainer(spec, tmp_path / "straight").fit()

    # A handler like submitit's on a rank that does not requeue: it returns.
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(sig, handler)
    try:
        trainer = Trainer(spec, tmp_path / "preempted")
        forward_loss = trainer.forward_loss

        def signal_in_4th_step(batch):
            if trainer.step == 3:
                os.kill(os.getpid(), sig)
            return forward_loss(batch)

        trainer.forward_loss = signal_in_4th_step
        with pytest.raises(SystemExit, match="preempted after step 4"):
            trainer.fit()
        assert seen == [sig]  # passed on, after the checkpoint, to the handler it replaced
        assert signal.getsignal(sig) is handler
    finally:
        signal.signal(sig, previous)
    assert load_checkpoint(tmp_path / "preempted" / "checkpoint.pt")["step"] == 4
    resumed = Trainer(spec, tmp_path / "preempted").fit()
    assert resumed.status == "completed" and resumed.step == 10
    assert_same_run(tmp_path / "straight", tmp_path / "preempted", exact=True)
