"""How much a run's numbers depend on its torch thread count (docs/REPORTS.md,
"Reproducibility"): one tiny run trained with ``train.threads`` 1, 2 and 4 (and 1 again),
then the largest difference in final weights and in the final metrics against the first.

    python benchmarks/threads.py                   # 100 steps, ~1 min on 2 cores
    python benchmarks/threads.py --steps 300 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from glmlab.runs.layout import EVAL_ITEMS, RESULT, WEIGHTS
from glmlab.testing.runs import TINY_OVERRIDES

METRICS = ("infill_token_loss", "infill_sentence_loss", "doc_gen_loss", "cloze_acc")


def _flat(node: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(node, dict):
        return {k: v for key, sub in node.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix: node} if isinstance(node, torch.Tensor) else {}


def train(workdir: Path, name: str, threads: int, steps: int) -> Path:
    """One tiny run with ``threads`` torch threads; its run directory."""
    args = [*TINY_OVERRIDES, f"train.max_steps={steps}", "train.eval_suite_items=32"]
    args += ["train.cloze_items=32", f"train.threads={threads}", f"hydra.run.dir={name}"]
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab", *args], cwd=workdir, capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"run {name} failed: {proc.stderr[-2000:]}")
    return workdir / name


def compare(a: Path, b: Path) -> dict[str, object]:
    """Bitwise equality and the largest differences of weights, metrics and item scores."""
    wa, wb = (_flat(torch.load(d / WEIGHTS, weights_only=True)) for d in (a, b))
    ra, rb = (json.loads((d / RESULT).read_text()) for d in (a, b))
    ia, ib = (json.loads((d / EVAL_ITEMS).read_text())["tasks"] for d in (a, b))
    return {
        "weights_bitwise_equal": all(torch.equal(wa[k], wb[k]) for k in wa),
        "max_weight_diff": max(float((wa[k] - wb[k]).abs().max()) for k in wa),
        "val_loss_diff": rb["final_val_loss"] - ra["final_val_loss"],
        "metric_diffs": {m: rb["eval"][m] - ra["eval"][m] for m in METRICS if m in ra["eval"]},
        "item_scores_equal": ia == ib,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        first = train(work, "first", args.threads[0], args.steps)
        again = train(work, "again", args.threads[0], args.steps)
        print(f"threads {args.threads[0]} twice: {json.dumps(compare(first, again))}")
        for t in args.threads[1:]:
            other = train(work, f"t{t}", t, args.steps)
            print(f"threads {args.threads[0]} vs {t}: {json.dumps(compare(first, other))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
