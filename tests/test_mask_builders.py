"""The built-in mask builders' error messages. What every builder must do (the dense mask
against its definition, ``check_layout``, empty batches, a ``ValueError`` naming an invalid
segment) is the conformance kit's job: ``tests/test_conformance.py`` runs it on each."""

from __future__ import annotations

import pytest

from glmlab.plugin.registry import get_registry
from glmlab.structures import Segment


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
def test_invalid_segments_say_what_is_wrong(bad: Segment, message: str) -> None:
    good = [Segment(0, 0, 4, 2), Segment(0, 4, 2, 1)]
    builder = get_registry().create("mask_builder", "glm")
    with pytest.raises(ValueError, match=message):
        builder.build([*good, bad], batch_size=2, seq_len=8)
