"""What the console says when a run or a sweep ends: where its output is, how it ended and
its final numbers: the run's own objective (validation loss) apart from the evaluation
suite's metrics, each read against the reference level a trained model must beat, with the
sweep report's test of being past it (:func:`glmlab.report.assess.reference_check`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmlab.config.scale import ScaleChoice
from glmlab.io import read_json
from glmlab.runs.layout import EVAL_ITEMS
from glmlab.runs.result import RunResult

if TYPE_CHECKING:
    from glmlab.report.stats import Arm, Estimate

__all__ = ["HEADLINE", "metric_phrases", "reference_notes", "run_summary"]

# (metric, label, digits, the reference it is read against)
HEADLINE = (
    ("infill_token_loss", "token infilling loss", 3, "unigram"),
    ("cloze_acc", "cloze accuracy", 3, "chance"),
    ("classify_acc", "classification accuracy", 3, "chance"),
    ("doc_gen_loss", "generation loss", 3, "unigram"),
)
# The metrics whose reference lines a sweep report judges (glmlab.report.markdown's
# reference_summary): past them, a run has learned something.
LEARNED = ("infill_token_loss", "cloze_acc")
OWN_OBJECTIVE = "validation loss (own objective)"
SUITE = "evaluation suite (held-out items, the same for every variant)"
NOT_PAST = "⚠ NOT past"


def _val_phrase(result: RunResult) -> str | None:
    value = result.final_val_loss
    return f"{OWN_OBJECTIVE} {value:.3f}" if value is not None else None


def metric_phrases(result: RunResult, run_dir: Path) -> list[str]:
    """The evaluation suite's headline metrics with their reference levels:
    ``token infilling loss 5.200 (unigram 5.730)``, ..."""
    phrases = []
    evaluation = result.eval or {}
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


def reference_notes(run_dir: Path) -> dict[str, str]:
    """``{metric: note}``: whether each headline metric of the completed run in ``run_dir``
    is past its trivial reference, tested as a sweep report tests a variant (its whole 95%
    interval over the evaluation items on the better side); {} without a recorded result."""
    from glmlab.report.assess import arm_of, assess_metric, reference_check
    from glmlab.report.load import Variant, read_run
    from glmlab.report.metrics import REFERENCES, metric_info

    run = read_run(run_dir)
    if not run.metrics:
        return {}
    variant = Variant("run", [run])
    notes = {}
    for metric, _, digits, _ in HEADLINE:
        if metric not in run.metrics:
            continue
        interval = assess_metric([variant], None, metric).intervals.get("run")
        if interval is not None and interval.low is None:
            interval = _over_items(arm_of(variant, metric)) or interval
        check = reference_check([run], metric, {"run": interval})
        if check is None or interval is None:
            continue
        ref, level, status = check
        span = (
            f"95% interval {interval.low:.{digits}f}–{interval.high:.{digits}f}"
            if interval.low is not None
            else "one value, no per-item scores"
        )
        higher = metric_info(metric).higher_is_better
        beyond = interval.estimate > level if higher else interval.estimate < level
        state = status.get("run")
        past = state == "past" or (state == "no interval" and beyond)
        notes[metric] = f"{'past' if past else NOT_PAST} {REFERENCES[ref]} ({span})"
    return notes


def _over_items(arm: Arm) -> Estimate | None:
    """One run's mean with a t interval over its evaluation items: the item part of a
    sweep's interval (one seed has no seed part; :func:`glmlab.report.stats.arm_estimate`
    gives none). None without per-item scores."""
    from glmlab.report.stats import Estimate, t_interval

    if arm.items is None or arm.n != 1 or arm.items.n_items < 2:
        return None
    z = arm.items.linearised()[0]
    mean, se, df = float(z.mean()), float(z.std(ddof=1)) / len(z) ** 0.5, len(z) - 1
    return Estimate(mean, *t_interval(mean, se, df), se=se, df=df)


def _closing(notes: dict[str, str]) -> list[str]:
    """The ⚠ line after the metrics: whether the run is past the references a sweep report
    judges (:data:`LEARNED`), or past them but not yet on another metric."""
    labels = {metric: label for metric, label, _, _ in HEADLINE}
    behind = [m for m, note in notes.items() if note.startswith(NOT_PAST)]
    if not behind:
        return []
    if any(m in LEARNED for m in behind):
        return [
            f"  ⚠ not past its trivial reference: {', '.join(labels[m] for m in behind)}: this "
            "run has not learned enough for its numbers to mean much; train longer "
            "(train.max_steps) or larger"
        ]
    return [
        f"  ⚠ past the references a sweep report judges ({', '.join(labels[m] for m in LEARNED)}), "
        f"not yet on {', '.join(labels[m] for m in behind)}: a task this objective may train "
        "little of (docs/EVALUATION.md)"
    ]


def run_summary(
    result: RunResult,
    run_dir: str | Path,
    *,
    job: int | None = None,
    scale: ScaleChoice | None = None,
) -> str:
    """One line for a run of a sweep (``job``: its number), or a few for a single run:
    the scale it ran at (``scale``: chosen how), its own objective's validation loss, and
    the evaluation suite's metrics, each said to be past its reference or not."""
    run_dir = Path(run_dir)
    status = result.status
    took = f" in {result.wall_time_s:.0f} s" if result.wall_time_s else ""
    where = f"at step {result.step}{took}"
    val = _val_phrase(result)
    suite = metric_phrases(result, run_dir)
    if job is not None:
        numbers = ([val] if val else []) + suite
        if result.error:
            numbers.append(f"error: {result.error}")
        name = " ".join(result.variant) or "(defaults)"
        return (
            f"glmlab: [run {job}] {name} seed={result.seed}: {status} {where}"
            + (f"; {', '.join(numbers)}" if numbers else "")
            + f" ({run_dir})"
        )
    lines = [f"glmlab: run {status} {where}: {run_dir}"]
    if scale is not None:
        lines.append(f"  {scale.line()}")
    if val:
        lines.append(f"  {val}: the task it trained on, comparable only within one objective")
    if suite:
        notes = reference_notes(run_dir) if status == "completed" else {}
        lines.append(f"  {SUITE}:")
        shown = [m for m, *_ in HEADLINE if m in (result.eval or {})]
        for metric, phrase in zip(shown, suite, strict=True):
            lines.append(f"    {phrase}" + (f": {notes[metric]}" if metric in notes else ""))
        lines += _closing(notes)
    if result.error:
        lines.append(f"  error: {result.error}")
    return "\n".join(lines)
