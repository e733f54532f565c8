"""The metric registry: how reports name, order, format and test each final metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "METRICS",
    "NOT_TESTED",
    "REFERENCES",
    "TASK_OF_METRIC",
    "TRIVIAL",
    "Metric",
    "margin_of",
    "metric_info",
]


@dataclass(frozen=True)
class Metric:
    """How a report shows one metric: a label, which direction is better, digits, a note,
    the evaluation task whose per-item scores it aggregates (None: scored per run),
    whether it is tested at all (throughput and memory measure the machine, not the variant),
    and the default equivalence margin (``report.margin`` overrides it; None: no test).
    """

    label: str
    higher_is_better: bool | None
    digits: int = 4
    note: str = ""
    task: str | None = None
    tested: bool = True
    margin: float | None = None


# Default equivalence margins: 0.02 nats per token for a loss (a 2% perplexity change),
# one point of accuracy; an experiment declares its own with report.margin.
LOSS_MARGIN, ACCURACY_MARGIN = 0.02, 0.01


# The names glmlab.eval.suite writes (plus the trainer's final_val_loss), in report order.
METRICS: dict[str, Metric] = {
    "final_val_loss": Metric(
        "validation loss",
        False,
        margin=LOSS_MARGIN,
        note="the run's own training objective on the held-out split: comparable only "
        "between variants trained with the same objective",
    ),
    "infill_token_loss": Metric(
        "token infilling loss",
        False,
        margin=LOSS_MARGIN,
        note="NLU proxy: nats per span token (15% token spans)",
        task="infill_token",
    ),
    "infill_sentence_loss": Metric(
        "sentence infilling loss",
        False,
        margin=LOSS_MARGIN,
        note="nats per token of masked whole sentences",
        task="infill_sentence",
    ),
    "doc_gen_loss": Metric(
        "document generation loss",
        False,
        margin=LOSS_MARGIN,
        note="NLG proxy: nats per token of the last 50%",
        task="doc_gen",
    ),
    "cloze_acc": Metric(
        "cloze accuracy",
        True,
        note="multiple choice by summed span log-probability",
        task="cloze",
        margin=ACCURACY_MARGIN,
    ),
    "train_tokens_per_s": Metric(
        "training tokens/s", True, digits=0, note="median over logging windows", tested=False
    ),
    "peak_mem_mb": Metric("peak memory (MiB)", False, digits=1, tested=False),
}

# Metric name -> the evaluation task whose per-item scores it aggregates.
TASK_OF_METRIC: dict[str, str] = {n: m.task for n, m in METRICS.items() if m.task}
# Shown, never tested: they measure the machine and its load, not the variant.
NOT_TESTED: frozenset[str] = frozenset(n for n, m in METRICS.items() if not m.tested)
# The reference levels eval_items.json records, and how a report names them.
REFERENCES: dict[str, str] = {
    "chance": "chance",
    "unigram": "unigram",
    "random_init": "untrained model",
}
# The reference a trained model must be past, in order of preference: "past" means the
# metric's whole 95% interval is on the better side of it (docs/REPORTS.md).
TRIVIAL = ("chance", "unigram")


def metric_info(name: str) -> Metric:
    """How to show metric ``name``; unknown names get a neutral entry."""
    return METRICS.get(name, Metric(name, None))


def margin_of(metric: str, setting: Any = None) -> float | None:
    """The equivalence margin of ``metric``: ``report.margin`` (one number for every
    metric, or ``{metric: number}``) or the metric's default."""
    if isinstance(setting, dict) and setting.get(metric) is not None:
        return float(setting[metric])
    if isinstance(setting, int | float) and not isinstance(setting, bool):
        return float(setting)
    return metric_info(metric).margin
