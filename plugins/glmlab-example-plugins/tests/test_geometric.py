"""The geometric span sampler: glmlab's span-sampler contract plus SpanBERT's length law."""

import numpy as np
import pytest

from glmlab.plugin.registry import get_registry
from glmlab.testing import SpanSamplerContract
from glmlab.testing.samples import random_text


class TestGeometricContract(SpanSamplerContract):
    name = "geometric"
    options = {"p": 0.2, "max_span_len": 10, "mask_ratio": 0.15}
    declared = {
        "mask_ratio": pytest.approx(0.15, abs=0.005),
        "max_mask_ratio": 0.15,
        # SpanBERT's mean 3.8, a little lower because the last span is trimmed to the budget.
        "mean_span_length": pytest.approx(3.7, abs=0.15),
        "max_span_length": 10,
        "min_gap": 1,
        "mask_kind": "MASK",
    }


def test_lengths_follow_the_truncated_geometric_law() -> None:
    sampler = get_registry().create("span_sampler", "geometric", p=0.2, max_span_len=10)
    rng = np.random.default_rng(0)
    sets = [sampler.sample(random_text(rng, 400), max_len=800, rng=rng) for _ in range(300)]
    # Every span but the last of a sample is an untrimmed draw.
    lengths = np.array([e - b for s in sets for b, e in s.spans[:-1]])
    observed = np.bincount(lengths, minlength=11)[1:] / lengths.size
    k = np.arange(1, 11)
    law = 0.2 * 0.8 ** (k - 1) / (1 - 0.8**10)
    assert 0.5 * np.abs(observed - law).sum() < 0.03  # total variation distance


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="p="):
        get_registry().create("span_sampler", "geometric", p=0.0)
    with pytest.raises(ValueError, match="mask_ratio"):
        get_registry().create("span_sampler", "geometric", mask_ratio=1.0)
