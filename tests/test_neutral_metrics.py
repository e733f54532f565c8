"""Each experiment's verdict metric is neutral to the factor it varies, and its arms differ
in that factor alone: single-span items have no Part B order to favour a span order, the
classification task is balanced and one token per class, the sentinel arms' samples have
identical position ids, the tied and untied arms have the same parameter count."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.assembly import (
    build_batch_sources,
    build_data,
    build_eval_suite,
    build_glm_model,
    build_sample_parts,
)
from glmlab.config.spec import parse_config
from glmlab.eval.classify import LABEL_SETS, classify_items, label_sets
from glmlab.eval.items import passages
from glmlab.eval.metrics import metrics_from_items, unigram_log_probs
from tests.conftest import TINY

CPU = torch.device("cpu")


def spec_of(*overrides: str, tiny: bool = True):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return parse_config(compose("config", overrides=[*(TINY if tiny else []), *overrides]))


def suite_of(*overrides: str):
    spec = spec_of(*overrides)
    data = build_data(spec)
    return spec, data, build_eval_suite(spec, data, build_sample_parts(spec, data), CPU)


@pytest.mark.parametrize("shuffle", ["true", "false"])
def test_single_span_items_have_no_part_b_order_to_favour(shuffle):
    # A model's single-span score is the same whether Part B is laid out in text order or
    # in any permutation: there is one span, so every order builds the identical sample.
    # On the multi-span items the order changes the sample, which is why text order
    # favours the no-shuffle arm (and random orders the shuffle arm).
    _, _, suite = suite_of(f"objective.shuffle_spans={shuffle}", "train.eval_suite_items=16")
    fmt = suite.format
    changed = 0
    for (ids, one), (_, many), orders in zip(
        suite.infill["infill_single"], suite.infill["infill_token"], suite.orders, strict=True
    ):
        assert len(one.spans) == 1 and one.spans[0] in many.spans
        text = fmt.sample(ids, one, cloze=False)
        permuted = fmt.sample(ids, one, cloze=False, order=np.random.permutation(1))
        assert all(
            np.array_equal(getattr(text, f), getattr(permuted, f))
            for f in ("input_ids", "position_ids", "target_ids", "loss_mask")
        )
        if len(many.spans) > 1:
            reversed_ = fmt.sample(ids, many, cloze=False, order=np.arange(len(many.spans))[::-1])
            changed += not np.array_equal(
                fmt.sample(ids, many, cloze=False).input_ids, reversed_.input_ids
            )
        assert [sorted(o.tolist()) for o in orders] == [list(range(len(many.spans)))] * len(orders)
    assert changed > 0


@pytest.mark.slow
def test_a_model_trained_in_text_order_scores_single_spans_the_same_in_any_order(tmp_path):
    # A model trained without span shuffling: its multi-span score depends on the order
    # Part B is laid out in (text order, its training order, against reversed), its
    # single-span score is one number whatever the order, and the suite's
    # infill_single_loss is that number.
    from glmlab.cli.run import execute_run

    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                *TINY,
                "objective.shuffle_spans=false",
                "positional=rope",
                "train.max_steps=100",
                "train.lr=1e-2",
                "train.eval_suite_items=48",
            ],
        )
    result = execute_run(cfg, tmp_path, [])
    assert result.status == "completed"
    spec = parse_config(cfg)
    data = build_data(spec)
    suite = build_eval_suite(spec, data, build_sample_parts(spec, data), CPU)
    model = build_glm_model(spec, data.tokenizer.padded_vocab_size, CPU)
    model.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True)["model"])
    model.eval()

    def loss(items, order) -> float:
        samples = [
            suite.format.sample(i, s, cloze=False, order=order(len(s.spans))) for i, s in items
        ]
        logp, n = suite._score(model, samples)
        return float(-logp.sum() / n.sum())

    text, backwards = (lambda m: None), (lambda m: np.arange(m)[::-1])
    many = suite.infill["infill_token"]
    assert loss(many, text) != loss(many, backwards)
    single = suite.infill["infill_single"]
    assert loss(single, text) == loss(single, backwards)
    assert loss(single, text) == pytest.approx(result.eval["infill_single_loss"], rel=1e-6)


def test_classification_items_are_balanced_one_token_classes():
    spec, data, suite = suite_of("train.classify_items=100000")
    sets = label_sets(data.tokenizer.encode)
    assert sets and all(len(s) >= 2 for s in sets)
    items = suite.choices["classify"]
    counts = collections.Counter(int(i.candidates[0][0]) for i in items)
    for words in sets:
        # Every word of a set answers the same number of items (all of them taken here).
        assert len({counts[w] for w in words}) == 1 and counts[words[0]] > 0
    for item in items:
        (s, e), answer = item.span, item.candidates[0]
        assert s >= 1 and e == s + 1 and item.ids[s] == answer[0]
        assert {len(c) for c in item.candidates} == {1}
        assert any(set(int(c[0]) for c in item.candidates) == set(w) for w in sets)
    # Balanced classes: the majority class (the unigram model's pick) wins 1/k of a set's
    # items, so the unigram reference is at the chance level, not above it.
    log_probs = unigram_log_probs(data.train.ids, data.tokenizer.vocab_size)
    unigram = metrics_from_items(suite.unigram_items(log_probs))["classify_acc"]
    chance = metrics_from_items(suite.chance_items())["classify_acc"]
    assert unigram == pytest.approx(chance)
    # The same items for every seed and variant; a cut keeps every set represented.
    again = classify_items(
        passages(data.validation, 500), sets, n_items=20, seq_len=spec.data.seq_len, seed=1234
    )
    firsts = {frozenset(int(c[0]) for c in i.candidates) for i in again[: len(sets)]}
    assert len(firsts) == len(sets)


def test_label_sets_keep_only_sets_of_single_tokens():
    table = {" is": [1], " are": [2], " a": [3], " an": [4, 5], " the": [6]}
    encode = lambda w: table.get(w, [7, 8])  # noqa: E731
    assert label_sets(encode) == [(1, 2)]
    assert len(LABEL_SETS) == 4


@pytest.mark.parametrize(("positions", "same"), [("mask", True), ("fixed", False)])
def test_sentinel_arms_differ_in_the_sentinel_tokens_alone(positions, same):
    # With objective.sentinel_positions=mask (the experiment's setting) the two arms' batches
    # have identical position ids and differ only where a span's mask or [sop] token is; the
    # reference's layout ("fixed") also moves Part B's positions.
    batches = {}
    for sentinels in ("false", "true"):
        spec = spec_of(
            f"objective.sentinels={sentinels}", f"objective.sentinel_positions={positions}"
        )
        data = build_data(spec)
        parts = build_sample_parts(spec, data)
        batches[sentinels] = build_batch_sources(spec, data, parts).train.batch(0)
        specials = parts.specials
    base, sent = batches["false"], batches["true"]
    assert torch.equal(base.position_ids, sent.position_ids) is same
    assert torch.equal(base.loss_mask, sent.loss_mask)
    differ = base.input_ids != sent.input_ids
    assert differ.any()
    assert set(base.input_ids[differ].tolist()) <= {specials.mask, specials.sop}
    sentinel_ids = set(specials.sentinel_masks) | set(specials.sentinel_sops)
    assert set(sent.input_ids[differ].tolist()) <= sentinel_ids


def test_tied_and_untied_arms_have_the_same_parameter_count():
    # tie_embeddings_ablation's arms at the CPU scale: within 3% of each other, where the
    # untied head alone adds vocab x dim (66% of the tied tiny model's non-embedding count).
    counts = {}
    for arm in ("tiny_tied_wide", "tiny_untied"):
        spec = spec_of("+experiment=tie_embeddings_ablation", f"model={arm}", tiny=False)
        model = build_glm_model(spec, spec.data.vocab_size, CPU)
        counts[arm] = model.num_parameters()
        assert spec.model.tie_embeddings is (arm == "tiny_tied_wide")
    assert counts["tiny_tied_wide"] / counts["tiny_untied"] == pytest.approx(1.0, abs=0.03)
