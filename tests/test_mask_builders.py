"""Mask builders against a brute-force reading of AttentionLayout's definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glmlab.registry import get_registry
from glmlab.structures import Segment
from glmlab.testing.samples import random_segments

PREFIX = {"glm": lambda s: s.sep, "causal": lambda s: 0, "bidirectional": lambda s: s.length}


def brute_force_mask(
    segments: list[Segment], prefix, batch_size: int, seq_len: int
) -> torch.Tensor:
    mask = torch.zeros(batch_size, seq_len, seq_len, dtype=torch.bool)
    owner = {}
    for s in segments:
        for col in range(s.start, s.start + s.length):
            owner[s.row, col] = s
    for b in range(batch_size):
        for q in range(seq_len):
            s = owner.get((b, q))
            for k in range(seq_len):
                if s is None:  # padding: only itself
                    mask[b, q, k] = k == q
                else:
                    same = owner.get((b, k)) is s
                    mask[b, q, k] = same and (k < s.start + prefix(s) or k <= q)
    return mask


@pytest.mark.parametrize("name", sorted(PREFIX))
def test_builder_matches_definition(name: str) -> None:
    builder = get_registry().create("mask_builder", name)
    rng = np.random.default_rng(0)
    for _ in range(30):
        batch_size, seq_len = int(rng.integers(1, 4)), int(rng.integers(1, 20))
        segments = random_segments(rng, batch_size, seq_len)
        layout = builder.build(segments, batch_size=batch_size, seq_len=seq_len)
        expected = brute_force_mask(segments, PREFIX[name], batch_size, seq_len)
        assert torch.equal(layout.dense_mask(), expected)
        assert layout.segment_ids.dtype == layout.prefix_end.dtype == torch.int32
        # segments: row-major, prefix resolved, segment_ids index into it.
        ordered = sorted(segments, key=lambda s: (s.row, s.start))
        assert layout.segments == [(s.row, s.start, s.length, PREFIX[name](s)) for s in ordered]
        for i, s in enumerate(ordered):
            cols = slice(s.start, s.start + s.length)
            assert (layout.segment_ids[s.row, cols] == i).all()
            assert (layout.prefix_end[s.row, cols] == s.start + PREFIX[name](s)).all()
        assert (layout.segment_ids >= 0).sum() == sum(s.length for s in segments)


def test_empty_batch_is_all_padding() -> None:
    layout = get_registry().create("mask_builder", "glm").build([], batch_size=2, seq_len=3)
    assert (layout.segment_ids == -1).all()
    assert torch.equal(layout.dense_mask(), torch.eye(3, dtype=torch.bool).expand(2, 3, 3))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Segment(2, 0, 3, 1), "row outside"),
        (Segment(0, 6, 3, 1), "columns outside"),
        (Segment(0, -1, 3, 1), "columns outside"),
        (Segment(1, 0, 0, 0), "length < 1"),
        (Segment(1, 0, 3, 4), "sep outside"),
        (Segment(1, 0, 3, -1), "sep outside"),
        (Segment(0, 3, 2, 1), "overlaps"),
    ],
)
def test_invalid_segments_raise(bad: Segment, message: str) -> None:
    good = [Segment(0, 0, 4, 2), Segment(0, 4, 2, 1)]
    builder = get_registry().create("mask_builder", "glm")
    with pytest.raises(ValueError, match=message) as info:
        builder.build([*good, bad], batch_size=2, seq_len=8)
    assert repr(bad) in str(info.value)
