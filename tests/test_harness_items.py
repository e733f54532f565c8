"""lm-evaluation-harness results as glmlab metrics, without lm-eval or a model: per-item
scores, the correct answer's probability, losses per word and byte, chance levels, and how
reports name and test a harness metric."""

from __future__ import annotations

import math

import pytest

from glmlab.harness.items import HarnessTask, task_items
from glmlab.report.metrics import TASK_OF_METRIC, metric_info


def test_harness_results_become_per_item_scores_metrics_and_chance():
    samples = [
        {  # two choices, the second right; two choices with acc_norm and a set-level f1
            "doc_id": i,
            "filter": "none",
            "target": 1,
            "arguments": [("q", " a"), ("q", " b")],
            "filtered_resps": [(math.log(0.2), False), (math.log(0.6), True)],
            "acc": 1.0,
            "f1": (1, 1),
        }
        for i in range(3)
    ]
    task = HarnessTask(
        "t", "multiple_choice", {"acc": "mean", "f1": "f1_score"}, samples, {"f1,none": 0.5}
    )
    out = task_items(task)
    assert out["tasks"]["t/acc"] == {"credit": [1.0, 1.0, 1.0]}
    assert out["tasks"]["t/prob"]["credit"] == pytest.approx([0.75] * 3)  # 0.6 / (0.2 + 0.6)
    assert "t/f1" not in out["tasks"] and out["metrics"]["t/f1"] == 0.5  # over the set only
    assert out["reference_metrics"]["chance"] == {"t/acc": 0.5, "t/prob": 0.5}
    rolling = HarnessTask(
        "w",
        "loglikelihood_rolling",
        {"word_perplexity": "weighted_perplexity", "bits_per_byte": "bits_per_byte"},
        [
            {
                "doc_id": 0,
                "filter": "none",
                "word_perplexity": (-6.0, 3),
                "bits_per_byte": (-6.0, 12),
            }
        ],
        {},
    )
    metrics = task_items(rolling)["metrics"]
    assert metrics["w/word_loss"] == 2.0 and metrics["w/byte_loss"] == 0.5
    assert metrics["w/word_ppl"] == pytest.approx(math.exp(2.0))


def test_reports_know_harness_metrics_by_name():
    assert TASK_OF_METRIC.get("boolq/acc") == "boolq/acc"
    assert "boolq/acc" not in TASK_OF_METRIC  # `in` lists the suite's own metrics only
    assert TASK_OF_METRIC.get("cloze_acc") == "cloze" and TASK_OF_METRIC.get("nope") is None
    assert metric_info("boolq/acc").higher_is_better is True
    assert metric_info("wikitext/word_loss").higher_is_better is False
    assert metric_info("boolq/prob").label == "boolq correct-answer probability"
    assert metric_info("cb/something_new").higher_is_better is None
