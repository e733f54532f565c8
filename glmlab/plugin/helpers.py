"""Public helpers for plugin authors: what the built-ins use, so a plugin need not copy it.

Stable across the hook API version (:data:`glmlab.API_VERSION`):

- :func:`place_spans`: place spans of given lengths in ``[0, n)`` with at least one
  unmasked token between two spans, as GLM's reference does (span samplers).
- :func:`positions_1d`: one position per column from GLM's two position rows (positional
  schemes that need a 1D position: learned 1D tables, RoPE, ALiBi).
- :func:`suffix_spans`: which Part B columns belong to a span ending Part A ([gMASK]).

The types a plugin handles live in :mod:`glmlab.structures` (``SpanSet``,
``TokenizedText``, ``AttentionLayout``, ``Segment``, ``MaskKind``); the base classes in
:mod:`glmlab.plugin.base`.
"""

from __future__ import annotations

import numpy as np
import torch


def place_spans(lengths: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Place spans of ``lengths`` (in that order) in ``[0, n)`` as the reference's
    ``sample_spans`` does: one uniform slot in ``0 .. n - sum - m + 1`` per span, drawn
    independently from ``rng`` and sorted; span ``i`` starts after the free tokens of its
    slot, the spans before it and one mandatory unmasked token after each of them.

    Returns sorted, non-overlapping ``(start, end)`` pairs. Raises ValueError unless
    ``sum(lengths) + len(lengths) - 1 <= n``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    m = lengths.shape[0]
    free = n - int(lengths.sum()) - m + 1
    if free < 0:
        raise ValueError(f"spans of lengths {lengths.tolist()} do not fit {n} tokens with gaps")
    slots = np.sort(rng.integers(0, free + 1, size=m))
    starts = slots + np.concatenate([[0], lengths.cumsum()[:-1]]) + np.arange(m)
    return list(zip(starts.tolist(), (starts + lengths).tolist(), strict=True))


def suffix_spans(position_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the Part B tokens of spans whose mask is the last token of their
    sample's Part A (a suffix span: GLM-130B's [gMASK] layout).

    Read from the rows alone: a sample starts at a Part A column with ``pos1 == 0``; its
    Part A ends at its largest Part A ``pos1``; Part B columns carry their mask's ``pos1``.
    """
    pos1, pos2 = position_ids[:, 0], position_ids[:, 1]
    part_a = pos2 == 0
    sample = (part_a & (pos1 == 0)).long().cumsum(-1)  # (B, L) sample index per column
    last_a = torch.full_like(pos1, -1).scatter_reduce(
        1, sample, torch.where(part_a, pos1, -1), reduce="amax"
    )
    return ~part_a & (pos1 == last_a.gather(1, sample))


def positions_1d(
    position_ids: torch.Tensor,
    *,
    pin_part_b: bool = False,
    suffix_counts_on: bool = False,
    max_positions: int | None = None,
) -> torch.Tensor:
    """(B, L) 1D positions from GLM's rows (B, 2, L).

    ``pos1 + pos2`` by default (Part B counts on from its span's mask); with ``pin_part_b``
    ``pos1`` (Part B pinned at its mask, GLM-130B's [MASK] layout), except, with
    ``suffix_counts_on``, on suffix spans (:func:`suffix_spans`), which count on. With
    ``max_positions``, clamped to it (a span running past a table reuses its last row).
    """
    pos1, pos2 = position_ids[:, 0], position_ids[:, 1]
    if not pin_part_b:
        pos = pos1 + pos2
    elif suffix_counts_on:
        pos = pos1 + pos2 * suffix_spans(position_ids)
    else:
        pos = pos1
    return pos if max_positions is None else pos.clamp(max=max_positions)
