"""The mask-builder contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glmlab.plugin.guards import check_layout
from glmlab.structures import Segment
from glmlab.testing.base import PluginContract
from glmlab.testing.samples import random_segments


class MaskBuilderContract(PluginContract):
    """Contract tests for a mask builder, against the brute-force definition the author
    declares by implementing :meth:`attends`.

    A builder's layout is a prefix-LM block per segment (see
    :class:`~glmlab.structures.AttentionLayout`), so the declared rule must be one too;
    padding attends only to itself and nothing crosses segments, whatever the rule.
    """

    kind = "mask_builder"

    def attends(self, segment: Segment, query: int, key: int) -> bool:
        """Whether the query at offset ``query`` of ``segment`` sees the key at offset
        ``key`` (both counted from the segment's start). Implement this."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement attends(segment, query, key)"
        )

    def brute_force_mask(
        self, segments: list[Segment], batch_size: int, seq_len: int
    ) -> torch.Tensor:
        """(B, L, L) bool: :meth:`attends` inside segments, the diagonal on padding."""
        mask = torch.eye(seq_len, dtype=torch.bool).repeat(batch_size, 1, 1)
        for s in segments:
            for q in range(s.length):
                for k in range(s.length):
                    mask[s.row, s.start + q, s.start + k] = self.attends(s, q, k)
        return mask

    def test_matches_the_declared_definition(self) -> None:
        builder = self.make()
        rng = np.random.default_rng(0)
        for _ in range(30):
            batch_size, seq_len = int(rng.integers(1, 4)), int(rng.integers(1, 20))
            segments = random_segments(rng, batch_size, seq_len)
            layout = builder.build(segments, batch_size=batch_size, seq_len=seq_len)
            check_layout(layout, segments, batch_size, seq_len, self.label)  # the runtime guard
            expected = self.brute_force_mask(segments, batch_size, seq_len)
            wrong = (layout.dense_mask() != expected).nonzero().tolist()
            assert not wrong, (
                f"{self.label} disagrees with its declared definition at (row, query, key) "
                f"{wrong[:5]} for segments {sorted(segments, key=lambda s: (s.row, s.start))}"
            )

    def test_empty_batch_is_all_padding(self) -> None:
        layout = self.make().build([], batch_size=2, seq_len=3)
        check_layout(layout, [], 2, 3, self.label)
        assert torch.equal(layout.dense_mask(), torch.eye(3, dtype=torch.bool).expand(2, 3, 3))

    @pytest.mark.parametrize(
        "bad",
        [
            Segment(2, 0, 3, 1),  # row outside the batch
            Segment(0, 6, 3, 1),  # columns past seq_len
            Segment(0, -1, 3, 1),  # negative start
            Segment(1, 0, 0, 0),  # empty
            Segment(1, 0, 3, 4),  # sep past the segment
            Segment(1, 0, 3, -1),  # negative sep
            Segment(0, 3, 2, 1),  # overlaps Segment(0, 0, 4, 2)
        ],
    )
    def test_rejects_invalid_segments(self, bad: Segment) -> None:
        """A ``ValueError`` that names the invalid segment (its ``repr``)."""
        good = [Segment(0, 0, 4, 2), Segment(0, 4, 2, 1)]
        with pytest.raises(ValueError) as info:
            self.make().build([*good, bad], batch_size=2, seq_len=8)
        assert repr(bad) in str(info.value), (
            f"{self.label}: the error for {bad!r} does not name it: {info.value}"
        )
