"""The suite's metrics from per-item scores: mean negative log-likelihood per span token
and its exponential for infilling, cloze accuracy (ties shared), and the reference levels
(a unigram model's scores, chance) a trained model must beat."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "CHOICE_TASKS",
    "ItemScores",
    "cloze_credit",
    "item_fractions",
    "metrics_from_items",
    "task_metric",
    "unigram_log_probs",
]


def cloze_credit(scores: np.ndarray) -> float:
    """1 if ``scores[0]`` (the true answer) is the unique maximum, 1/t if it ties with
    t - 1 others for the maximum, else 0."""
    best = scores.max()
    if scores[0] < best:
        return 0.0
    return 1.0 / float((scores == best).sum())


# Per task, per item: ``{"logp": [...], "n": [...]}`` (summed log-probability of the
# scored tokens and their count) for infilling tasks, ``{"credit": [...]}`` for cloze.
ItemScores = dict[str, dict[str, list[float]]]


def item_fractions(task: str, scores: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """A task's metric as a ratio of per-item sums, ``sum(num) / sum(den)``: an infilling
    loss is (−log p summed over tokens) / tokens, cloze accuracy is credit / items."""
    if "credit" in scores:
        credit = np.asarray(scores["credit"], dtype=np.float64)
        return credit, np.ones_like(credit)
    return -np.asarray(scores["logp"], dtype=np.float64), np.asarray(scores["n"], dtype=np.float64)


CHOICE_TASKS = ("cloze", "classify")  # multiple-choice tasks: credit per item, accuracy


def task_metric(task: str) -> str:
    """The metric name a task's per-item scores aggregate to."""
    return f"{task}_acc" if task in CHOICE_TASKS else f"{task}_loss"


def metrics_from_items(items: ItemScores) -> dict[str, float]:
    """The suite's metrics from per-item scores (losses also as perplexities)."""
    out: dict[str, float] = {}
    for task, scores in items.items():
        num, den = item_fractions(task, scores)
        value = float(num.sum() / max(den.sum(), 1.0))
        out[task_metric(task)] = value
        if task not in CHOICE_TASKS:
            out[f"{task}_ppl"] = math.exp(min(value, 700.0))  # exp overflows past ~709
    return out


def unigram_log_probs(train_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Log-probabilities of a unigram model fitted to ``train_ids`` (add-one smoothed
    over the ``vocab_size`` token ids)."""
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size)
    counts = counts[:vocab_size].astype(np.float64) + 1.0
    return np.log(counts / counts.sum())
