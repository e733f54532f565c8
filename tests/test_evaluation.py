"""The evaluation suite: same items and scored tokens for every model family, hand-checked
item formats, fixed cloze items, and its place in a run's metrics and result."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.assembly import (
    build_data,
    build_eval_suite,
    build_glm_model,
    build_sample_parts,
)
from glmlab.cli.run import execute_run
from glmlab.config.spec import parse_config
from glmlab.eval.formats import CLMFormat, GLMFormat, MLMFormat
from glmlab.eval.items import cloze_items, passages
from glmlab.eval.metrics import cloze_credit, metrics_from_items, unigram_log_probs
from glmlab.eval.suite import EvalSuite
from glmlab.objective.batches import collate_rows
from glmlab.objective.glm import GLMObjective
from glmlab.plugin.base import SpanSamplerBase
from glmlab.structures import SpanSet, TokenizedText
from tests.conftest import TINY

CPU = torch.device("cpu")


def spec_of(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return parse_config(compose("config", overrides=[*TINY, *overrides]))


def suite_of(*overrides: str) -> EvalSuite:
    spec = spec_of(*overrides)
    data = build_data(spec)
    return build_eval_suite(spec, data, build_sample_parts(spec, data), CPU)


def test_every_model_family_gets_the_same_items_and_scored_tokens():
    suites = {
        o or "glm": suite_of(*([o] if o else []))
        for o in ("", "objective=mlm", "objective=clm", "objective.sentinels=true")
    }
    ref = suites["glm"]
    for name, suite in suites.items():
        for task, items in suite.infill.items():
            assert len(items) == suite.settings.items == 8  # TINY's suite
            for (ids, spans), (ref_ids, ref_spans) in zip(items, ref.infill[task], strict=True):
                assert np.array_equal(ids, ref_ids) and spans.spans == ref_spans.spans, name
                assert spans.spans[0][0] >= 1  # the first token stays as context
            scored = [suite.format.sample(i, s, cloze=False).loss_mask.sum() for i, s in items]
            expected = [sum(e - s for s, e in sp.spans) for _, sp in ref.infill[task]]
            assert scored == expected, (name, task)
        assert all(
            all(np.array_equal(a, b) for a, b in zip(c.candidates, r.candidates, strict=True))
            for c, r in zip(suite.cloze, ref.cloze, strict=True)
        )
    # The document task masks the second half of each passage as one [gMASK] suffix.
    ids, spans = ref.infill["doc_gen"][0]
    ((start, end),) = spans.spans
    assert end == spans.keep and abs((end - start) - (spans.keep - 1) / 2) <= 1


def test_item_formats_by_hand():
    ids = np.arange(10, 20)
    spans = SpanSet(((2, 4), (6, 7)), 10, "MASK")
    spec = spec_of()
    data = build_data(spec)
    specials = data.tokenizer.specials

    mlm = MLMFormat(specials).sample(ids, spans, cloze=False)
    assert mlm.input_ids.tolist() == [
        10,
        11,
        specials.mask,
        specials.mask,
        14,
        15,
        specials.mask,
        17,
        18,
        19,
    ]
    assert np.flatnonzero(mlm.loss_mask).tolist() == [2, 3, 6] and mlm.sep == 10
    assert mlm.target_ids.tolist() == ids.tolist()

    clm = CLMFormat().sample(ids, spans, cloze=False)
    assert clm.input_ids.tolist() == list(range(10, 19)) and clm.sep == 0
    assert clm.target_ids[np.flatnonzero(clm.loss_mask)].tolist() == [12, 13, 16]
    clm_cloze = CLMFormat().sample(ids, SpanSet(((2, 4),), 10, "MASK"), cloze=True)
    assert clm_cloze.target_ids[clm_cloze.loss_mask > 0].tolist() == list(range(12, 20))

    glm = GLMFormat(build_sample_parts(spec, data).objective, max_len=spec.data.seq_len)
    sample = glm.sample(ids, spans, cloze=False)
    assert sample.input_ids[: sample.sep].tolist() == [
        10,
        11,
        specials.mask,
        14,
        15,
        specials.mask,
        17,
        18,
        19,
    ]
    assert sample.target_ids[sample.loss_mask > 0].tolist() == [12, 13, 16]  # no [eop]
    cloze = glm.sample(ids, spans, cloze=True)
    assert cloze.target_ids[cloze.loss_mask > 0].tolist() == [
        12,
        13,
        specials.eop,
        16,
        specials.eop,
    ]
    # A token-only model reads sentence spans with the [MASK] it knows, [sMASK] if trained on it.
    assert glm.mask_kind("sMASK") == "MASK"
    sent_spec = spec_of("objective=glm_sent")
    sent = GLMFormat(build_sample_parts(sent_spec, data).objective, max_len=64)
    assert sent.mask_kind("sMASK") == "sMASK" and sent.mask_kind("gMASK") == "MASK"


class _FixedSpans(SpanSamplerBase):
    """A span sampler that returns the spans it was given."""

    def __init__(self, spans: SpanSet) -> None:
        self.spans = spans

    def sample(self, text, *, max_len, rng):
        return self.spans


@pytest.mark.parametrize("overrides", [(), ("objective.sentinels=true",)])
def test_glm_format_is_the_training_sample_builder(overrides):
    # The suite's GLM items are exactly what training builds from the same spans (no
    # shuffle), sentinels included: read through the training sample builder.
    spec = spec_of(*overrides)
    data = build_data(spec)
    suite = build_eval_suite(spec, data, build_sample_parts(spec, data), CPU)
    glm = suite.format
    assert isinstance(glm, GLMFormat)
    checked = 0
    for items in suite.infill.values():
        for ids, spans in items[:20]:
            spans = SpanSet(spans.spans, spans.keep, "MASK", spans.eop)
            training = GLMObjective(
                [("fixed", _FixedSpans(spans), 1.0)],
                glm.specials,
                shuffle_spans=False,
                sentinels=glm.sentinels,
                sentinel_position=glm.sentinel_position,
            )
            text = TokenizedText(ids, np.asarray([len(ids)]))
            want = training.build(text, max_len=spec.data.seq_len, rng=np.random.default_rng(0))
            got = glm.build(ids, spans)
            for field in ("input_ids", "position_ids", "target_ids", "loss_mask"):
                assert np.array_equal(getattr(got, field), getattr(want, field)), field
            assert got.sep == want.sep
            checked += 1
    # infill_token, infill_sentence, doc_gen and infill_single
    assert checked == len(suite.infill) * min(20, spec.train.eval_suite_items) == 4 * 8


def test_cloze_items_are_fixed_by_seed_with_distinct_same_length_distractors():
    texts = passages(build_data(spec_of()).validation, 40)
    items = cloze_items(texts, n_items=30, n_distractors=4, seq_len=64, seed=7)
    again = cloze_items(texts, n_items=30, n_distractors=4, seq_len=64, seed=7)
    other = cloze_items(texts, n_items=30, n_distractors=4, seq_len=64, seed=8)
    for item, same in zip(items, again, strict=True):
        s, e = item.span
        assert np.array_equal(item.candidates[0], item.ids[s:e]) and s >= 1
        assert len(item.candidates) == 5
        assert {len(c) for c in item.candidates} == {e - s}
        assert len({tuple(c) for c in item.candidates}) == 5
        assert all(
            np.array_equal(a, b) for a, b in zip(item.candidates, same.candidates, strict=True)
        )
    assert [i.span for i in items] != [i.span for i in other]


def test_unigram_reference_by_hand():
    log_probs = unigram_log_probs(np.array([0, 1, 1, 3]), 4)  # add-one: counts 2, 3, 1, 2
    assert np.exp(log_probs) == pytest.approx([2 / 8, 3 / 8, 1 / 8, 2 / 8])
    suite = suite_of("train.classify_items=64")  # passages enough for every label set
    items = suite.unigram_items(unigram_log_probs(np.arange(1024) % 512, 512))
    uniform = math.log(512)  # every token equally frequent: the uniform model
    assert metrics_from_items(items)["infill_token_loss"] == pytest.approx(uniform)
    # Every candidate ties under a uniform model: 1 / (k + 1) per item, chance exactly.
    assert metrics_from_items(items)["cloze_acc"] == pytest.approx(0.25)
    assert metrics_from_items(items)["classify_acc"] == pytest.approx(
        metrics_from_items(suite.chance_items())["classify_acc"]
    )
    chance = metrics_from_items(suite.chance_items())
    assert chance["cloze_acc"] == pytest.approx(0.25)
    # Classification: 1 / (the item's set size), averaged over the items.
    sizes = [len(i.candidates) for i in suite.choices["classify"]]
    assert chance["classify_acc"] == pytest.approx(np.mean([1 / k for k in sizes]))


def test_cloze_credit_by_hand():
    assert cloze_credit(np.array([-1.0, -2.0, -3.0])) == 1.0
    assert cloze_credit(np.array([-2.0, -1.0, -3.0])) == 0.0
    assert cloze_credit(np.array([-1.0, -1.0, -3.0, -1.0])) == pytest.approx(1 / 3)


def test_suite_is_deterministic_and_consistent():
    spec = spec_of()
    data = build_data(spec)
    torch.manual_seed(0)
    model = build_glm_model(spec, data.tokenizer.padded_vocab_size, CPU)
    parts = build_sample_parts(spec, data)
    suite = build_eval_suite(spec, data, parts, CPU)
    first, second = suite.run(model), build_eval_suite(spec, data, parts, CPU).run(model)
    assert first == second
    assert model.training  # the suite restores the mode it found
    for task in ("infill_token", "infill_sentence", "doc_gen"):
        loss = first[f"{task}_loss"]
        # An untrained model is close to uniform over the padded vocabulary.
        assert abs(loss - math.log(data.tokenizer.padded_vocab_size)) < 0.5
        assert first[f"{task}_ppl"] == pytest.approx(math.exp(loss))
    # Every metric equals the same scores computed one sample at a time through the
    # model's own training loss (a different batching and loss path from the suite's).
    assert first == pytest.approx(reference_metrics(suite, model), rel=1e-4)


def one_sample_logp(suite: EvalSuite, model, sample) -> tuple[float, float]:
    """Summed log-probability of ``sample``'s scored tokens and their count, from
    ``model.loss`` (the loss-mask-weighted mean cross-entropy) on a batch of that sample."""
    batch = collate_rows(
        [[sample]],
        seq_len=suite.settings.seq_len,
        pad_id=suite.pad_id,
        mask_builder=suite.mask_builder,
    )
    n = float(batch.loss_mask.sum())
    with torch.no_grad():
        return -float(model.loss(batch)) * n, n


def reference_metrics(suite: EvalSuite, model) -> dict[str, float]:
    model.eval()
    out = {}
    for task, items in suite.infill.items():
        scores = [
            one_sample_logp(suite, model, suite.format.sample(i, s, cloze=False)) for i, s in items
        ]
        loss = -sum(logp for logp, _ in scores) / sum(n for _, n in scores)
        out[f"{task}_loss"], out[f"{task}_ppl"] = loss, math.exp(loss)
    # Part B in each item's random orders, the log-probability averaged over them.
    logp = n = 0.0
    for (i, s), orders in zip(suite.infill["infill_token"], suite.orders, strict=True):
        for order in orders:
            sample = suite.format.sample(i, s, cloze=False, order=order)
            lp, k = one_sample_logp(suite, model, sample)
            logp, n = logp + lp / len(orders), n + k / len(orders)
    out["infill_shuffled_loss"] = -logp / n
    out["infill_shuffled_ppl"] = math.exp(-logp / n)
    for task, items in suite.choices.items():
        credits = []
        for item in items:
            s, e = item.span
            logps = []
            for cand in item.candidates:
                ids = np.concatenate([item.ids[:s], cand, item.ids[e:]])
                spans = SpanSet(((s, e),), len(ids), "MASK")
                sample = (
                    suite.format.sample(ids, spans, cloze=True)
                    if task == "cloze"
                    else suite.format.choice(ids, spans)
                )
                logps.append(one_sample_logp(suite, model, sample)[0])
            credits.append(cloze_credit(np.array(logps)))
        out[f"{task}_acc"] = float(np.mean(credits))
    model.train()
    return out


@pytest.mark.slow
def test_run_writes_suite_to_metrics_and_result(tmp_path):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose(
            "config", overrides=[*TINY, "train.eval_suite_interval=4", "train.max_steps=8"]
        )
    result = execute_run(cfg, tmp_path, [])
    assert result.status == "completed"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    suite_rows = [r for r in rows if "eval" in r]
    assert [r["step"] for r in suite_rows] == [4, 8]
    final = json.loads((tmp_path / "result.json").read_text())["eval"]
    assert final.items() >= suite_rows[-1]["eval"].items()
    assert final["peak_mem_mb"] > 10 and final["train_tokens_per_s"] > 0
    # Per-item scores that add up to the final metrics, and the reference levels.
    saved = json.loads((tmp_path / "eval_items.json").read_text())
    assert saved["step"] == 8
    assert metrics_from_items(saved["tasks"]) == pytest.approx(suite_rows[-1]["eval"])
    assert len(saved["tasks"]["cloze"]["credit"]) == cfg.train.cloze_items
    refs = saved["reference_metrics"]
    assert refs["chance"]["cloze_acc"] == pytest.approx(1 / (cfg.train.cloze_distractors + 1))
    for name in ("unigram", "random_init"):
        assert set(refs[name]) >= {"infill_token_loss", "doc_gen_loss", "cloze_acc"}
    # The untrained model is close to uniform; the unigram model far better than that.
    assert refs["unigram"]["infill_token_loss"] < refs["random_init"]["infill_token_loss"] - 1


def test_each_objective_names_its_item_format() -> None:
    """The format comes from the objective's own ``item_format`` (no type dispatch): each
    built-in names one of FORMATS, and a class naming none is one clear error."""
    from glmlab.eval.formats import FORMATS, item_format
    from glmlab.objective.base import Objective
    from glmlab.objective.baselines import CLMObjective, MLMObjective
    from glmlab.structures import SpecialTokens

    assert {GLMObjective.item_format, MLMObjective.item_format, CLMObjective.item_format} == set(
        FORMATS
    )
    specials = SpecialTokens(0, 2, 3, 4, 5, 6, (), ())
    mlm = MLMObjective(specials, vocab_size=64, n_special=8)
    assert isinstance(item_format(mlm, max_len=32), MLMFormat)
    assert isinstance(item_format(CLMObjective(), max_len=32), CLMFormat)

    class Unnamed(Objective):
        name = "unnamed"

    with pytest.raises(ValueError, match=r"Unnamed.item_format = None is not an item format"):
        item_format(Unnamed(), max_len=32)
