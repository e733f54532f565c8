"""What the console says when a run or a sweep ends: where its output is, how it ended and
its final numbers (with the reference levels a trained model must beat)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmlab.io import read_json
from glmlab.runs.layout import EVAL_ITEMS

# (metric, label, digits, the reference it is read against)
HEADLINE = (
    ("infill_token_loss", "token infilling loss", 3, "unigram"),
    ("cloze_acc", "cloze accuracy", 3, "chance"),
    ("classify_acc", "classification accuracy", 3, "chance"),
    ("doc_gen_loss", "generation loss", 3, "unigram"),
)


def metric_phrases(result: dict[str, Any], run_dir: Path) -> list[str]:
    """``validation loss 4.66``, ``token infilling loss 5.20 (unigram 5.73)``, ..."""
    phrases = []
    if isinstance(result.get("final_val_loss"), int | float):
        phrases.append(f"validation loss {result['final_val_loss']:.3f}")
    evaluation = result.get("eval") or {}
    refs: dict[str, Any] = {}
    if (run_dir / EVAL_ITEMS).exists():
        refs = read_json(run_dir / EVAL_ITEMS).get("reference_metrics") or {}
    for metric, label, digits, ref in HEADLINE:
        if metric not in evaluation:
            continue
        level = (refs.get(ref) or {}).get(metric)
        note = f" ({ref} {level:.{digits}f})" if level is not None else ""
        phrases.append(f"{label} {evaluation[metric]:.{digits}f}{note}")
    return phrases


def run_summary(result: dict[str, Any], run_dir: str | Path, *, job: int | None = None) -> str:
    """One line for a run of a sweep (``job``: its number), or a few for a single run."""
    run_dir = Path(run_dir)
    status = result.get("status", "unknown")
    took = f" in {result['wall_time_s']:.0f} s" if result.get("wall_time_s") else ""
    where = f"at step {result.get('step')}{took}"
    numbers = metric_phrases(result, run_dir)
    if result.get("error"):
        numbers.append(f"error: {result['error']}")
    if job is not None:
        name = " ".join(result.get("variant") or []) or "(defaults)"
        return (
            f"glmlab: [run {job}] {name} seed={result.get('seed')}: {status} {where}"
            + (f"; {', '.join(numbers)}" if numbers else "")
            + f" ({run_dir})"
        )
    lines = [f"glmlab: run {status} {where}: {run_dir}"]
    lines += [f"  {p}" for p in numbers]
    return "\n".join(lines)
