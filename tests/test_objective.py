"""The GLM sample layout against the paper's worked example, and the baselines."""

import numpy as np
import pytest

from glmlab.objective.baselines import CLMObjective, MLMObjective
from glmlab.objective.glm import GLMObjective
from glmlab.objective.sample import build_glm_sample
from glmlab.plugin.base import SpanSamplerBase
from glmlab.plugin.guards import SamplerInvariantError
from glmlab.structures import SpanSet, SpecialTokens, TokenizedText

X = [11, 12, 13, 14, 15, 16]  # x1..x6
M, S, E = 90, 91, 92
SPANS = [(2, 3), (4, 6)]  # [x3] and [x5 x6]


def test_paper_example_shuffled_order():
    s = build_glm_sample(X, SPANS, mask_id=M, sop_id=S, eop_id=E, order=[1, 0])
    assert s.input_ids.tolist() == [11, 12, M, 14, M, S, 15, 16, S, 13]
    assert s.position_ids[0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 2, 2]
    assert s.position_ids[1].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]
    assert s.target_ids[s.sep :].tolist() == [15, 16, E, 13, E]
    assert s.loss_mask.tolist() == [0] * 5 + [1] * 5
    assert s.sep == 5


def test_paper_example_text_order():
    s = build_glm_sample(X, SPANS, mask_id=M, sop_id=S, eop_id=E, order=[0, 1])
    assert s.input_ids.tolist() == [11, 12, M, 14, M, S, 13, S, 15, 16]
    assert s.position_ids[0].tolist() == [0, 1, 2, 3, 4, 2, 2, 4, 4, 4]
    assert s.position_ids[1].tolist() == [0, 0, 0, 0, 0, 1, 2, 1, 2, 3]
    assert s.target_ids[5:].tolist() == [13, E, 15, 16, E]
    assert s.sep == 5
    assert (
        build_glm_sample(X, SPANS, mask_id=M, sop_id=S, eop_id=E, order=None).input_ids.tolist()
        == s.input_ids.tolist()
    )


def test_sentinel_variant_uses_a_token_per_span_and_fixed_position():
    s = build_glm_sample(
        X, SPANS, mask_id=[100, 101], sop_id=[200, 201], eop_id=E, order=[1, 0], part_b_position=64
    )
    assert s.input_ids.tolist() == [11, 12, 100, 14, 101, 201, 15, 16, 200, 13]
    assert s.position_ids[0, 5:].tolist() == [64] * 5
    assert s.position_ids[1, 5:].tolist() == [1, 2, 3, 1, 2]


def test_adjacent_spans_and_span_at_start():
    s = build_glm_sample([1, 2, 3, 4], [(0, 1), (1, 3)], mask_id=M, sop_id=S, eop_id=E)
    assert s.input_ids.tolist() == [M, M, 4, S, 1, S, 2, 3]
    assert s.position_ids[0].tolist() == [0, 1, 2, 0, 0, 1, 1, 1]


def test_no_spans_is_part_a_only():
    s = build_glm_sample([1, 2, 3], [], mask_id=M, sop_id=S, eop_id=E)
    assert s.input_ids.tolist() == [1, 2, 3] and s.sep == 3 and s.loss_mask.sum() == 0


@pytest.mark.parametrize(
    "spans, order",
    [([(2, 1)], None), ([(0, 3), (2, 4)], None), ([(4, 7)], None), ([(0, 1), (2, 3)], [0, 0])],
)
def test_invalid_spans_or_order_raise(spans, order):
    with pytest.raises(ValueError):
        build_glm_sample(X, spans, mask_id=M, sop_id=S, eop_id=E, order=order)


def test_random_layouts_are_consistent():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        tokens = rng.integers(1000, 2000, n)
        cuts = np.sort(
            rng.choice(np.arange(n + 1), size=2 * int(rng.integers(0, n // 2 + 1)), replace=False)
        )
        spans = [(int(a), int(b)) for a, b in cuts.reshape(-1, 2)]
        order = rng.permutation(len(spans))
        s = build_glm_sample(tokens, spans, mask_id=M, sop_id=S, eop_id=E, order=order)
        assert len(s) == n + 2 * len(spans)
        assert s.sep == n - sum(b - a for a, b in spans) + len(spans)
        # Part B, read in order, reproduces each span followed by [eop].
        b_targets = s.target_ids[s.sep :].tolist()
        expected = [t for j in order for t in [*tokens[spans[j][0] : spans[j][1]].tolist(), E]]
        assert b_targets == expected
        # Each Part B input is the previous target inside its span (teacher forcing).
        b_in = s.input_ids[s.sep :]
        nxt = s.position_ids[1, s.sep :] > 1
        assert (b_in[nxt] == s.target_ids[s.sep :][np.flatnonzero(nxt) - 1]).all()
        # Part B position row 0 points at a mask in Part A.
        assert (s.input_ids[s.position_ids[0, s.sep :]] == M).all()


SPECIALS = SpecialTokens(
    pad=0,
    mask=1,
    smask=2,
    gmask=3,
    sop=4,
    eop=5,
    sentinel_masks=(6, 7, 8),
    sentinel_sops=(9, 10, 11),
)


class FixedSampler(SpanSamplerBase):
    def __init__(self, spans: SpanSet) -> None:
        self.spans = spans

    def sample(self, text, *, max_len, rng):
        return self.spans


def test_glm_objective_maps_mask_kinds_and_sentinels():
    text = TokenizedText(np.arange(20, 30), np.array([10]))
    rng = np.random.default_rng(0)
    obj = GLMObjective(
        [("s", FixedSampler(SpanSet(((3, 5),), 10, "gMASK")), 1.0)], SPECIALS, shuffle_spans=False
    )
    assert obj.build(text, max_len=12, rng=rng).input_ids[3] == SPECIALS.gmask
    sent = GLMObjective(
        [("s", FixedSampler(SpanSet(((1, 2), (4, 6)), 10)), 1.0)],
        SPECIALS,
        shuffle_spans=False,
        sentinels=True,
        sentinel_position=128,
    )
    s = sent.build(text, max_len=14, rng=rng)
    # Numbered by Part B's order (the reference): the first span of Part B has the plain
    # [MASK] / [sop], the second [MASK_1] / [sop_1].
    assert s.input_ids[:6].tolist() == [20, 1, 22, 23, 7, 26]
    assert s.input_ids[s.sep :].tolist() == [4, 21, 10, 24, 25]
    assert (s.position_ids[0, s.sep :] == 128).all()


def test_glm_objective_guard_names_the_sampler():
    text = TokenizedText(np.arange(10), np.array([10]))
    bad = GLMObjective([("overlapper", FixedSampler(SpanSet(((0, 4), (3, 5)), 10)), 1.0)], SPECIALS)
    with pytest.raises(SamplerInvariantError, match="overlapper"):
        bad.build(text, max_len=20, rng=np.random.default_rng(0))
    too_long = GLMObjective([("greedy", FixedSampler(SpanSet(((0, 4),), 10)), 1.0)], SPECIALS)
    with pytest.raises(SamplerInvariantError, match="greedy.*max_len"):
        too_long.build(text, max_len=11, rng=np.random.default_rng(0))


def test_mixture_follows_weights():
    text = TokenizedText(np.arange(10), np.array([10]))
    a = FixedSampler(SpanSet(((0, 1),), 10, "MASK"))
    b = FixedSampler(SpanSet(((0, 1),), 10, "gMASK"))
    obj = GLMObjective([("a", a, 0.3), ("b", b, 0.7)], SPECIALS)
    rng = np.random.default_rng(1)
    kinds = [obj.build(text, max_len=20, rng=rng).input_ids[0] for _ in range(4000)]
    assert abs(np.mean(np.array(kinds) == SPECIALS.gmask) - 0.7) < 0.03


def test_mlm_80_10_10():
    text = TokenizedText(np.arange(100, 1100), np.array([1000]))
    obj = MLMObjective(SPECIALS, vocab_size=5000, n_special=12)
    rng = np.random.default_rng(0)
    masked = rand = kept = total = 0
    for _ in range(50):
        s = obj.build(text, max_len=1000, rng=rng)
        sel = s.loss_mask > 0
        assert s.sep == len(s) and (s.target_ids == text.ids).all()
        total += sel.sum()
        masked += (s.input_ids[sel] == SPECIALS.mask).sum()
        kept += (s.input_ids[sel] == text.ids[sel]).sum()
        rand += ((s.input_ids[sel] != SPECIALS.mask) & (s.input_ids[sel] != text.ids[sel])).sum()
        assert (s.input_ids[~sel] == text.ids[~sel]).all()
    assert abs(total / (50 * 1000) - 0.15) < 0.005
    assert (
        abs(masked / total - 0.8) < 0.03
        and abs(kept / total - 0.1) < 0.03
        and abs(rand / total - 0.1) < 0.03
    )


def test_clm_shifts_targets_and_is_causal():
    text = TokenizedText(np.arange(10, 20), np.array([10]))
    s = CLMObjective().build(text, max_len=6, rng=np.random.default_rng(0))
    assert s.input_ids.tolist() == [10, 11, 12, 13, 14, 15]
    assert s.target_ids.tolist() == [11, 12, 13, 14, 15, 16]
    assert s.sep == 0 and s.loss_mask.sum() == 6
