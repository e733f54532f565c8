"""Statistics of the built-in span samplers over many samples, beyond what they declare to
the conformance kit (valid spans that fit any budget, determinism under a seed and the
declared means are its job: tests/test_conformance.py)."""

import numpy as np
import pytest

from glmlab.plugin.guards import check_span_set
from glmlab.plugin.registry import get_registry
from glmlab.structures import TokenizedText


def sampler(name, **options):
    return get_registry().create("span_sampler", name, **options)


def text(n: int, sentence_len: int = 20) -> TokenizedText:
    return TokenizedText(
        np.arange(n, dtype=np.int64), np.append(np.arange(sentence_len, n, sentence_len), n)
    )


def draw(s, t, max_len, k=1500, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        spans = s.sample(t, max_len=max_len, rng=rng)
        check_span_set(spans, len(t), max_len, "test")
        out.append(spans)
    return out


def test_token_sampler_ratio_length_and_gaps():
    sets = draw(sampler("token"), text(448), max_len=512)
    fractions = np.array([s.n_masked / s.keep for s in sets])
    lengths = [e - b for s in sets for b, e in s.spans]
    # Drawn until >= int(0.15 n) and never trimmed: never below, a little above on average.
    assert (fractions >= int(0.15 * 448) / 448).all() and (fractions < 0.15 + 39 / 448).all()
    assert 0.151 < fractions.mean() < 0.158
    assert abs(np.mean(lengths) - 3.157) < 0.08  # Poisson(3) restricted to 1..39
    assert max(lengths) <= 39
    for s in sets:  # at least one unmasked token between consecutive spans
        assert all(b2 > e1 for (_, e1), (b2, _) in zip(s.spans, s.spans[1:], strict=False))
    # Placement is spread over the whole text.
    starts = np.array([b for s in sets for b, _ in s.spans])
    assert starts.min() < 10 and starts.max() > 430


def test_token_sampler_options():
    a = draw(
        sampler("token", mask_ratio=0.3, poisson_lambda=1.0), text(300), max_len=400, k=200, seed=3
    )
    assert 0.3 <= np.mean([s.n_masked / s.keep for s in a]) < 0.31
    assert np.mean([e - s for x in a for s, e in x.spans]) < 2.0


def test_token_sampler_drops_the_tail_when_part_b_does_not_fit():
    sets = draw(sampler("token"), text(128), max_len=130, k=300)
    assert all(s.glm_length() <= 130 and s.keep < 128 for s in sets)


def test_sentence_sampler_masks_whole_sentences():
    t = text(400, sentence_len=25)
    sets = draw(sampler("sentence"), t, max_len=512, k=500)
    bounds = set(t.sentence_ends.tolist()) | {0}
    for s in sets:
        assert s.mask_kind == "sMASK"
        assert all(b in bounds and e in bounds for b, e in s.spans)
        assert s.n_masked >= 0.15 * s.keep
        assert s.n_masked - 25 < 0.15 * s.keep  # stops as soon as the ratio is reached


def test_document_suffix_sampler_suffix_50_to_100_percent():
    sets = draw(sampler("document_suffix"), text(200), max_len=256)
    fracs = np.array([s.n_masked / s.keep for s in sets])
    assert all(
        s.mask_kind == "gMASK" and len(s.spans) == 1 and s.spans[0][1] == s.keep for s in sets
    )
    assert fracs.min() >= 0.5 - 1e-9 and fracs.max() <= 1.0
    assert abs(fracs.mean() - 0.75) < 0.02


def test_gmask_sampler_keeps_a_prefix():
    sets = draw(sampler("gmask"), text(200), max_len=256)
    starts = np.array([s.spans[0][0] for s in sets])
    assert starts.min() >= 1 and all(s.spans[0][1] == s.keep for s in sets)
    assert abs(np.mean([s.n_masked / s.keep for s in sets]) - 0.5) < 0.03


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="mask_ratio"):
        sampler("token", mask_ratio=1.5)
    with pytest.raises(ValueError, match="min_ratio"):
        sampler("document_suffix", min_ratio=0.9, max_ratio=0.5)
    with pytest.raises(ValueError, match="suffix_prob"):
        sampler("document", suffix_prob=1.5)
