"""The metric registry: how reports name, order, format and test each final metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glmlab.runs.layout import RunStatus
from glmlab.runs.stability import EXCURSION_FACTOR, SPIKE_NATS, STABILITY_METRICS

__all__ = [
    "METRICS",
    "NOT_TESTED",
    "OUTCOME_METRICS",
    "REFERENCES",
    "TASK_OF_METRIC",
    "TRIVIAL",
    "Metric",
    "declared_margin",
    "is_harness_metric",
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
    "infill_single_loss": Metric(
        "single-span infilling loss",
        False,
        margin=LOSS_MARGIN,
        note="one token-level span per item: no Part B order, neutral to span shuffling",
        task="infill_single",
    ),
    "infill_shuffled_loss": Metric(
        "shuffled-order infilling loss",
        False,
        margin=LOSS_MARGIN,
        note="the token infilling items with Part B in 4 random orders (averaged): favours "
        "models trained with span shuffling, as text order favours those trained without",
        task="infill_shuffled",
    ),
    "cloze_acc": Metric(
        "cloze accuracy",
        True,
        note="multiple choice by summed span log-probability",
        task="cloze",
        margin=ACCURACY_MARGIN,
    ),
    "classify_acc": Metric(
        "classification accuracy",
        True,
        margin=ACCURACY_MARGIN,
        note="NLU proxy: closed-class words (is/are, a/an/the, and/or, prepositions) as "
        "classes, chosen by blank infilling; balanced, so chance is the majority level",
        task="classify",
    ),
    RunStatus.DIVERGED.value: Metric(  # per run: 1 when it diverged
        "divergence rate",
        False,
        digits=2,
        note="share of runs whose loss became NaN or infinite (diverged runs counted)",
    ),
    "stalled": Metric(
        "share of runs that did not learn",
        False,
        digits=2,
        note="runs whose token infilling loss is not below the unigram level, diverged "
        "runs included",
    ),
    "loss_spikes": Metric(
        "loss spikes per run",
        False,
        digits=2,
        note=f"training-loss windows {SPIKE_NATS} nats above the lowest before "
        "(glmlab/runs/stability.py)",
    ),
    "grad_norm_excursions": Metric(
        "gradient-norm excursions per run",
        False,
        digits=2,
        note=f"windows whose largest gradient norm is {EXCURSION_FACTOR:g}x the earlier median",
    ),
    "max_grad_norm": Metric("largest gradient norm", False, digits=2, note="before clipping"),
    "loss_tokens_per_step": Metric(
        "loss tokens per step",
        None,
        digits=0,
        note="the supervision a step gives: the tokens with a loss (result.json's compute: "
        "scored share x tokens per step)",
        tested=False,
    ),
    "train_flops": Metric(
        "training FLOPs",
        None,
        digits=0,
        note="result.json's compute: blocks, attention and the output head at scored positions",
        tested=False,
    ),
    "train_tokens_per_s": Metric(
        "training tokens/s", True, digits=0, note="median over logging windows", tested=False
    ),
    "peak_mem_mb": Metric("peak memory (MiB)", False, digits=1, tested=False),
}

# Recorded for diverged runs too (result.json ``stability``): a report counts those runs.
OUTCOME_METRICS: frozenset[str] = frozenset({*STABILITY_METRICS, "stalled"})


def is_harness_metric(name: str) -> bool:
    """Whether ``name`` is an lm-evaluation-harness task's metric, ``<task>/<metric>``
    (glmlab/harness/items.py); the suite's names hold no ``/``."""
    return "/" in name


class _TaskOfMetric(dict[str, str]):
    """The suite's metrics by name (what ``in`` answers: a suite metric without per-item
    scores means an old run directory), and through ``get`` and ``[]`` every harness
    metric too, whose per-item scores (if lm-eval has them per item) are stored under its
    own name (harness_items.json, merged by the report's loader)."""

    def __missing__(self, name: str) -> str:
        if is_harness_metric(name):
            return name
        raise KeyError(name)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return (
            name
            if is_harness_metric(name) and name not in self.keys()
            else super().get(name, default)
        )


# Metric name -> the evaluation task whose per-item scores it aggregates.
TASK_OF_METRIC: dict[str, str] = _TaskOfMetric({n: m.task for n, m in METRICS.items() if m.task})
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


# Harness metrics (glmlab/harness/items.py) by their last part: which way is better.
_HARNESS_HIGHER = {"acc", "acc_norm", "acc_mutual_info", "prob", "em", "exact_match", "f1", "mcc"}
_HARNESS_LABELS = {
    "acc": "accuracy",
    "acc_norm": "accuracy (length-normalised)",
    "prob": "correct-answer probability",
    "answer_loss": "answer loss",
    "word_loss": "loss per word",
    "byte_loss": "loss per byte",
}


def _harness_info(name: str) -> Metric:
    task, _, metric = name.partition("/")
    base = metric.partition("@")[0]
    higher = False if base.endswith("_loss") else True if base in _HARNESS_HIGHER else None
    note = {
        "prob": "lm-evaluation-harness: the correct answer's probability per item "
        "(normalised over the choices for multiple choice), a continuous metric",
        "answer_loss": "lm-evaluation-harness: nats of the answer per item; exp is its perplexity",
        "word_loss": "lm-evaluation-harness: nats per word; exp is word_perplexity",
        "byte_loss": "lm-evaluation-harness: nats per byte; exp is byte_perplexity, "
        "/ ln 2 bits_per_byte",
    }.get(base, "lm-evaluation-harness")
    label = f"{task} {_HARNESS_LABELS.get(base, base)}" + metric[len(base) :]
    return Metric(label, higher, note=note, task=name)


def metric_info(name: str) -> Metric:
    """How to show metric ``name``; a harness metric is described by its name, other
    unknown names get a neutral entry."""
    if name in METRICS:
        return METRICS[name]
    return _harness_info(name) if is_harness_metric(name) else Metric(name, None)


def margin_of(metric: str, setting: Any = None) -> float | None:
    """The equivalence margin of ``metric``: ``report.margin`` (one number for every
    metric, or ``{metric: number}``) or the metric's default."""
    if isinstance(setting, dict) and setting.get(metric) is not None:
        return float(setting[metric])
    if isinstance(setting, int | float) and not isinstance(setting, bool):
        return float(setting)
    return metric_info(metric).margin


def declared_margin(metric: str, setting: Any = None) -> float | None:
    """The margin the experiment declared for ``metric`` (``report.margin``), or None: an
    equivalence test joins a report's family only for a declared margin."""
    if isinstance(setting, dict):
        value = setting.get(metric)
        return None if value is None else float(value)
    if isinstance(setting, int | float) and not isinstance(setting, bool):
        return float(setting)
    return None
