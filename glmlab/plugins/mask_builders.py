"""Built-in mask builders: ``glm`` (prefix = sep), ``causal`` (prefix = 0) and
``bidirectional`` (prefix = length).

Each turns the samples' placement into an :class:`AttentionLayout`: per column the index of
its segment (-1 for padding) and the absolute column where that segment's bidirectional
prefix ends. Work is per segment (numpy ``repeat``), never per token and never L x L.
"""

from __future__ import annotations

import numpy as np
import torch

from glmlab import hookimpl
from glmlab.plugin.base import MaskBuilderBase
from glmlab.structures import AttentionLayout, Segment


def _validate(segments: list[Segment], table: np.ndarray, batch_size: int, seq_len: int) -> None:
    """Raise ValueError naming the first segment outside its row, with a bad ``sep``, or
    overlapping its predecessor. ``table`` holds (row, start, length, sep) sorted row-major."""
    rows, starts, lengths, seps = table.T
    problems = {
        f"row outside [0, {batch_size})": (rows < 0) | (rows >= batch_size),
        "length < 1": lengths < 1,
        f"columns outside [0, {seq_len})": (starts < 0) | (starts + lengths > seq_len),
        "sep outside [0, length]": (seps < 0) | (seps > lengths),
    }
    overlap = np.zeros(len(segments), dtype=bool)
    overlap[1:] = (rows[1:] == rows[:-1]) & (starts[1:] < starts[:-1] + lengths[:-1])
    problems["overlaps the previous segment of its row"] = overlap
    for what, bad in problems.items():
        if bad.any():
            raise ValueError(f"invalid {segments[int(bad.argmax())]}: {what}")


class PrefixMaskBuilder(MaskBuilderBase):
    """Prefix-LM layout per segment; subclasses choose the prefix length."""

    def prefix_lengths(self, lengths: np.ndarray, seps: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        ordered = sorted(segments, key=lambda s: (s.row, s.start))
        table = np.array(
            [(s.row, s.start, s.length, s.sep) for s in ordered], dtype=np.int64
        ).reshape(-1, 4)
        _validate(ordered, table, batch_size, seq_len)
        rows, starts, lengths, seps = table.T
        prefix = self.prefix_lengths(lengths, seps)

        # Row-major, the flattened (B, L) columns alternate gap (padding, possibly empty) and
        # segment runs: run-length decode both per-column fields with one repeat each.
        n = len(ordered)
        flat_start = rows * seq_len + starts
        runs = np.empty(2 * n + 1, dtype=np.int64)
        runs[0::2] = np.append(flat_start, batch_size * seq_len)
        runs[0::2] -= np.insert(flat_start + lengths, 0, 0)
        runs[1::2] = lengths
        ids = np.full(2 * n + 1, -1, dtype=np.int32)
        ids[1::2] = np.arange(n)
        ends = np.zeros(2 * n + 1, dtype=np.int32)  # unused on padding
        ends[1::2] = starts + prefix
        shape = (batch_size, seq_len)
        return AttentionLayout(
            batch_size=batch_size,
            seq_len=seq_len,
            segments=[tuple(x) for x in np.stack([rows, starts, lengths, prefix], axis=1).tolist()],
            segment_ids=torch.from_numpy(ids.repeat(runs).reshape(shape)),
            prefix_end=torch.from_numpy(ends.repeat(runs).reshape(shape)),
        )


class GLMMaskBuilder(PrefixMaskBuilder):
    """GLM: Part A (``sep`` tokens) bidirectional, Part B causal."""

    def prefix_lengths(self, lengths: np.ndarray, seps: np.ndarray) -> np.ndarray:
        return seps


class CausalMaskBuilder(PrefixMaskBuilder):
    """Causal LM: no bidirectional prefix."""

    def prefix_lengths(self, lengths: np.ndarray, seps: np.ndarray) -> np.ndarray:
        return np.zeros_like(lengths)


class BidirectionalMaskBuilder(PrefixMaskBuilder):
    """Fully bidirectional inside each segment (the MLM baseline)."""

    def prefix_lengths(self, lengths: np.ndarray, seps: np.ndarray) -> np.ndarray:
        return lengths


@hookimpl
def glmlab_mask_builders() -> dict[str, type[PrefixMaskBuilder]]:
    return {
        "glm": GLMMaskBuilder,
        "causal": CausalMaskBuilder,
        "bidirectional": BidirectionalMaskBuilder,
    }
