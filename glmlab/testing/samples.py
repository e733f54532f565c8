"""Synthetic inputs for the contract tests: texts, packed GLM batches, tiny models.

Everything is small and seeded so that a contract test takes milliseconds and fails the
same way every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glmlab.model.glm import GLMConfig
from glmlab.objective.batches import collate_rows
from glmlab.objective.sample import build_glm_sample
from glmlab.plugin.base import MaskBuilderBase
from glmlab.structures import Batch, GLMSample, Segment, TokenizedText

PAD, MASK, SOP, EOP = 0, 1, 4, 5
FIRST_TEXT_ID = 6  # ids below are special tokens
VOCAB_SIZE = 64


def random_text(
    rng: np.random.Generator, n: int, sentence_len: tuple[int, int] = (5, 30)
) -> TokenizedText:
    """``n`` random token ids cut into sentences of ``sentence_len`` (inclusive) tokens."""
    cuts = np.cumsum(rng.integers(sentence_len[0], sentence_len[1] + 1, size=n + 1))
    ends = np.append(cuts[cuts < n], n)
    return TokenizedText(rng.integers(FIRST_TEXT_ID, VOCAB_SIZE, size=n, dtype=np.int64), ends)


def random_segments(rng: np.random.Generator, batch_size: int, seq_len: int) -> list[Segment]:
    """Samples packed from column 0 of each row, random trailing padding, some empty rows,
    in shuffled order (a builder must not depend on it). A third of the ``sep`` values are
    0 (no Part A), a third the full length (no Part B), the rest uniform in between."""
    segments = []
    for row in range(batch_size):
        col = 0
        while rng.random() < 0.8 and col < seq_len:
            length = int(rng.integers(1, seq_len - col + 1))
            sep = (0, length, int(rng.integers(0, length + 1)))[int(rng.integers(3))]
            segments.append(Segment(row, col, length, sep))
            col += length
    rng.shuffle(segments)
    return segments


def random_glm_samples(
    rng: np.random.Generator, count: int, *, max_len: int, sentinel_position: int | None = None
) -> list[GLMSample]:
    """``count`` GLM samples of random text with random spans, each at most ``max_len`` long.

    Every third sample pins Part B's first position row to ``sentinel_position`` when
    given: the sentinel variant's extra position, which schemes must accept.
    """
    samples = []
    for i in range(count):
        n = int(rng.integers(2, max(3, max_len * 3 // 4)))
        m = int(rng.integers(0, min(n, max_len - n) // 2 + 1))
        cuts = np.sort(rng.choice(n + 1, size=2 * m, replace=False)).reshape(m, 2)
        pinned = sentinel_position if sentinel_position is not None and i % 3 == 2 else None
        samples.append(
            build_glm_sample(
                rng.integers(FIRST_TEXT_ID, VOCAB_SIZE, size=n),
                [(int(a), int(b)) for a, b in cuts],
                mask_id=MASK,
                sop_id=SOP,
                eop_id=EOP,
                order=rng.permutation(m),
                part_b_position=pinned,
            )
        )
    return samples


def pack(samples: Sequence[GLMSample], seq_len: int) -> list[list[GLMSample]]:
    """Greedily pack ``samples`` (in order) into rows of ``seq_len`` columns."""
    rows: list[list[GLMSample]] = [[]]
    used = 0
    for s in samples:
        if used + len(s) > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(s)
        used += len(s)
    return rows


def collate(
    rows: Sequence[Sequence[GLMSample]], mask_builder: MaskBuilderBase, seq_len: int
) -> Batch:
    """A :class:`Batch` of ``rows`` laid out by ``mask_builder``, padded with ``PAD``."""
    return collate_rows(rows, seq_len=seq_len, pad_id=PAD, mask_builder=mask_builder)


def tiny_config(**overrides: int | str | float | bool) -> GLMConfig:
    """A GLM small enough for a CPU test: 2 layers, dim 32, 4 heads, 32 positions."""
    shape = {"vocab_size": VOCAB_SIZE, "n_layers": 2, "dim": 32, "n_heads": 4, "max_positions": 32}
    return GLMConfig(**{**shape, **overrides})
