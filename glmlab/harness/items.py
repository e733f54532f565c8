"""lm-evaluation-harness results as glmlab per-item scores and metrics (no lm_eval import).

Each harness task ``T`` becomes metrics named ``T/<metric>`` (``T/<metric>@<filter>`` for
a filter other than lm-eval's ``none``), the form :func:`glmlab.eval.metrics.item_fractions`
reads, so that the report pairs them by item like the suite's own:

- a metric lm-eval averages over items (``acc``, ``acc_norm``, ``exact_match``, ``em``,
  ``f1`` of ReCoRD, ...): its per-item values, ``{"credit": [...]}``;
- ``T/prob`` for ``multiple_choice`` and ``loglikelihood`` tasks: the probability of the
  correct answer, per item (DataDecide's continuous likelihood metric). Multiple choice:
  normalised over the choices, ``p(gold) / sum_i p(choice_i)`` from the summed
  log-likelihoods (chance 1 / choices); loglikelihood: ``exp(log p(continuation))``;
- perplexities as losses ``{"logp": [...], "n": [...]}``: ``T/answer_loss`` (nats per
  item, lm-eval's ``perplexity`` is its exp), ``T/word_loss`` and ``T/byte_loss`` (nats per
  word and per byte of ``loglikelihood_rolling`` tasks: exp gives ``word_perplexity`` and
  ``byte_perplexity``, / ln 2 ``bits_per_byte``); each with its ``_ppl`` beside it;
- a metric lm-eval aggregates over the whole set (``f1`` of CB, ``mcc``, ``bleu``): its
  value only, which the report tests over seeds.

Multiple-choice accuracy and ``T/prob`` get the chance level as a reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from glmlab.eval.metrics import item_fractions

__all__ = ["FORMAT", "HarnessTask", "metric_name", "task_items"]

FORMAT = 1  # harness_items.json's layout version

# lm-eval's aggregation functions, by name: how a per-item value becomes glmlab's.
MEAN = "mean"
ROLLING = ("weighted_perplexity", "bits_per_byte")  # per item (log-likelihood, words/bytes)
ROLLING_UNIT = {"word_perplexity": "word", "byte_perplexity": "byte", "bits_per_byte": "byte"}
CHANCE_METRICS = ("acc", "acc_norm", "prob")


def metric_name(task: str, metric: str, filter_key: str = "none") -> str:
    """How a report names harness task ``task``'s ``metric`` (module docstring)."""
    return f"{task}/{metric}" + ("" if filter_key == "none" else f"@{filter_key}")


class HarnessTask:
    """One task's results: its output type, lm-eval's aggregation per metric (function
    names) and its logged samples (``log_samples``), plus the aggregate values lm-eval
    reported (``{"acc,none": 0.6, ...}``)."""

    def __init__(
        self,
        name: str,
        output_type: str,
        aggregations: Mapping[str, str],
        samples: Sequence[Mapping[str, Any]],
        reported: Mapping[str, Any],
    ) -> None:
        self.name = name
        self.output_type = output_type
        self.aggregations = dict(aggregations)
        self.samples = sorted(samples, key=lambda s: (str(s.get("filter")), s["doc_id"]))
        self.reported = dict(reported)

    def by_filter(self) -> dict[str, list[Mapping[str, Any]]]:
        out: dict[str, list[Mapping[str, Any]]] = {}
        for s in self.samples:
            out.setdefault(str(s.get("filter", "none")), []).append(s)
        return out


def _loglikelihoods(sample: Mapping[str, Any]) -> list[float]:
    return [float(r[0] if isinstance(r, list | tuple) else r) for r in sample["filtered_resps"]]


def _n_choices(sample: Mapping[str, Any]) -> int:
    n = len(sample["arguments"])
    return n // 2 if "acc_mutual_info" in sample else n  # then every choice is asked twice


def _gold(sample: Mapping[str, Any]) -> list[int] | None:
    """The indices of the correct choices, or None when the target names none."""
    k = _n_choices(sample)
    choices = [str(a[1]).strip() for a in sample["arguments"][:k]]
    targets = sample["target"] if isinstance(sample["target"], list) else [sample["target"]]
    gold = []
    for t in targets:
        if isinstance(t, int | np.integer) and not isinstance(t, bool) and 0 <= t < k:
            gold.append(int(t))
        elif isinstance(t, str) and t.strip() in choices:
            gold.append(choices.index(t.strip()))
        elif isinstance(t, str) and t.strip().isdigit() and int(t) < k:
            gold.append(int(t))
        else:
            return None
    return gold or None


def _correct_prob(task: HarnessTask, samples: Sequence[Mapping[str, Any]]) -> list[float] | None:
    if task.output_type == "loglikelihood":
        return [math.exp(_loglikelihoods(s)[0]) for s in samples]
    out = []
    for s in samples:
        gold = _gold(s)
        if gold is None:
            return None
        lls = np.asarray(_loglikelihoods(s)[: _n_choices(s)])
        out.append(float(np.exp(logsumexp(lls[gold]) - logsumexp(lls))))
    return out


def task_items(task: HarnessTask) -> dict[str, Any]:
    """``{"tasks": {metric: per-item scores}, "metrics": {metric: value},
    "reference_metrics": {"chance": {...}}}`` of one harness task (module docstring)."""
    items: dict[str, dict[str, list[float]]] = {}
    ppl: dict[str, str] = {}  # loss metric -> the name of its exp
    metrics: dict[str, float] = {}
    chance: dict[str, float] = {}
    for filter_key, samples in task.by_filter().items():

        def name(metric: str, key: str = filter_key) -> str:
            return metric_name(task.name, metric, key)

        for metric, aggregation in task.aggregations.items():
            values = [s.get(metric) for s in samples]
            if any(v is None for v in values):
                continue
            if aggregation == MEAN and all(isinstance(v, int | float) for v in values):
                items[name(metric)] = {"credit": [float(v) for v in values]}
            elif aggregation in ROLLING and metric in ROLLING_UNIT:
                unit = ROLLING_UNIT[metric]
                items[name(f"{unit}_loss")] = {
                    "logp": [float(v[0]) for v in values],
                    "n": [float(v[1]) for v in values],
                }
                ppl[name(f"{unit}_loss")] = name(f"{unit}_ppl")
            elif aggregation == "perplexity":
                items[name("answer_loss")] = {
                    "logp": [float(v) for v in values],
                    "n": [1.0] * len(values),
                }
                ppl[name("answer_loss")] = name("answer_ppl")
            else:  # aggregated over the whole set by lm-eval: its value only
                value = task.reported.get(f"{metric},{filter_key}")
                if isinstance(value, int | float) and math.isfinite(value):
                    metrics[name(metric)] = float(value)
        if task.output_type in ("multiple_choice", "loglikelihood"):
            prob = _correct_prob(task, samples)
            if prob is not None:
                items[name("prob")] = {"credit": prob}
        if task.output_type == "multiple_choice":
            level = float(np.mean([1.0 / _n_choices(s) for s in samples]))
            chance.update({name(m): level for m in CHANCE_METRICS if name(m) in items})
    for key, scores in items.items():
        num, den = item_fractions(key, scores)
        metrics[key] = value = float(num.sum() / max(den.sum(), 1e-300))
        if key in ppl:
            metrics[ppl[key]] = math.exp(min(value, 700.0))  # exp overflows past ~709
    return {"tasks": items, "metrics": metrics, "reference_metrics": {"chance": chance}}
