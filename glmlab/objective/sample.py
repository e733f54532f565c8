"""The GLM sample builder: the pure core that users can check by hand.
:func:`build_glm_sample` lays a text and its spans out as Part A + Part B (its docstring
works the paper's example), :func:`sample_from_spans` does it for a :class:`SpanSet`, and
:func:`fill_row` packs a row's pieces side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from glmlab.structures import GLMSample, SpanSet, SpecialTokens, TokenizedText

__all__ = [
    "build_glm_sample",
    "fill_row",
    "sample_from_spans",
]


def _per_span(value: int | Sequence[int], n_spans: int, what: str) -> np.ndarray:
    """``value`` as an int64 array: 0-d for one id shared by every span, else one per span."""
    arr = np.asarray(value, dtype=np.int64)
    if arr.ndim and arr.shape != (n_spans,):
        raise ValueError(
            f"{what} must be one id or one id per span ({n_spans}), got {arr.shape[0]}"
        )
    return arr


def build_glm_sample(
    tokens: Sequence[int] | np.ndarray,
    spans: Sequence[tuple[int, int]],
    *,
    mask_id: int | Sequence[int],
    sop_id: int | Sequence[int],
    eop_id: int,
    order: Sequence[int] | np.ndarray | None = None,
    part_b_position: int | None = None,
    final_eop: bool = True,
) -> GLMSample:
    """Lay out one GLM sample.

    Args:
        tokens: the text's token ids, ``x_0 .. x_{n-1}``.
        spans: half-open ``(start, end)`` token index pairs, sorted and non-overlapping.
        mask_id: the token that replaces each span in Part A; one id, or one per span
            (the sentinel variant uses a distinct ``[MASK_i]`` per span).
        sop_id: the token that starts each span in Part B; one id or one per span.
        eop_id: the target after each span's last token.
        order: the order of the spans in Part B, a permutation of ``range(len(spans))``;
            ``None`` keeps text order. Shuffling draws it at random.
        part_b_position: if given, Part B's first position row is this value instead of
            the span's mask position (the sentinel variant's fixed out-of-range position).
        final_eop: ``False`` drops the last Part B span's [eop]: its input is
            ``[sop] span[:-1]`` and its targets ``span`` (the reference's document-level suffix).

    Returns:
        Part A (``tokens`` with each span replaced by one mask) then, for each span in
        ``order``, ``[sop] span`` with targets ``span [eop]``. Position row 0: index in
        Part A, Part B tokens carry their span's mask index; row 1: 0 in Part A, 1, 2, ...
        inside each Part B span. Loss mask 1 on Part B only; ``sep`` = len(Part A).

    The paper's example (0-based, no [CLS]): ``x1..x6`` with spans ``[x3]`` and
    ``[x5 x6]``, Part B order ``([x5 x6], [x3])``::

        >>> s = build_glm_sample([1, 2, 3, 4, 5, 6], [(2, 3), (4, 6)],
        ...                      mask_id=90, sop_id=91, eop_id=92, order=[1, 0])
        >>> s.input_ids.tolist()
        [1, 2, 90, 4, 90, 91, 5, 6, 91, 3]
        >>> s.position_ids.tolist()
        [[0, 1, 2, 3, 4, 4, 4, 4, 2, 2], [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]]
        >>> s.target_ids.tolist()[5:], s.sep
        ([5, 6, 92, 3, 92], 5)
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    n = tokens.shape[0]
    m = len(spans)
    bounds = np.array(spans, dtype=np.int64).reshape(m, 2)
    starts, ends = bounds[:, 0], bounds[:, 1]
    order = np.arange(m) if order is None else np.asarray(order, dtype=np.int64)
    if order.shape != (m,) or sorted(order.tolist()) != list(range(m)):
        raise ValueError(f"order must be a permutation of range({m}), got {order.tolist()}")
    mask_ids = _per_span(mask_id, m, "mask_id")
    sop_ids = _per_span(sop_id, m, "sop_id")

    # The inputs are one gather from ``tokens`` over 2m + 1 half-open ranges: Part A's m + 1
    # unmasked stretches, each ending with its span's first token (the mask's slot), then
    # for span j = order[i] the range [s_j - 1, e_j), whose first slot becomes [sop]. A few
    # whole-sample numpy calls instead of per-span work: this runs once per sample on the
    # loader's critical path.
    lo = np.concatenate([[0], ends, starts[order] - 1])
    hi = np.concatenate([starts + 1, [n], ends[order]])
    lens = hi - lo
    # The spans are sorted, non-overlapping, non-empty and inside [0, n) exactly when each
    # stretch before a span holds at least its mask, the last one is not negative, and each
    # Part B range holds [sop] and at least one token.
    if m and (lens[:m].min() < 1 or lens[m] < 0 or lens[m + 1 :].min() < 2):
        raise ValueError(
            f"spans must be sorted, non-overlapping, non-empty and inside [0, {n}); got {list(map(tuple, bounds.tolist()))}"
        )
    cum = lens.cumsum()
    first = cum - lens
    offset = np.arange(int(cum[-1])) - first.repeat(lens)  # index inside each range
    input_ids = tokens[offset + lo.repeat(lens)]  # s_j - 1 = -1 only at a [sop] slot
    sep = int(cum[m])
    mask_pos = cum[:m] - 1  # index of each span's mask inside Part A
    input_ids[mask_pos] = mask_ids
    input_ids[first[m + 1 :]] = sop_ids[order] if sop_ids.ndim else sop_ids

    # Part B's targets are its next inputs (x_s .. x_{e-1}), with [eop] after each span.
    target_ids = np.zeros(input_ids.shape[0], dtype=np.int64)
    target_ids[sep:-1] = input_ids[sep + 1 :]
    target_ids[cum[m + 1 :] - 1] = eop_id
    position_ids = np.zeros((2, input_ids.shape[0]), dtype=np.int64)
    position_ids[0, :sep] = np.arange(sep)
    position_ids[0, sep:] = (
        mask_pos[order].repeat(lens[m + 1 :]) if part_b_position is None else part_b_position
    )
    position_ids[1, sep:] = offset[sep:] + 1  # 1 at [sop]
    loss_mask = np.zeros(input_ids.shape[0], dtype=np.float32)
    loss_mask[sep:] = 1.0
    if not final_eop and m:
        # The last input (the span's last token) only predicts [eop]: drop it; the input
        # before it already predicts that token.
        end = input_ids.shape[0] - 1
        input_ids, position_ids = input_ids[:end], position_ids[:, :end]
        target_ids, loss_mask = target_ids[:end], loss_mask[:end]
    return GLMSample(input_ids, position_ids, target_ids, loss_mask, sep)


def sample_from_spans(
    ids: np.ndarray,
    spans: SpanSet,
    specials: SpecialTokens,
    *,
    order: Sequence[int] | np.ndarray | None = None,
    sentinels: bool = False,
    sentinel_position: int | None = None,
) -> GLMSample:
    """The first ``spans.keep`` tokens of ``ids`` with ``spans`` as a GLM sample
    (:func:`build_glm_sample`), the special tokens chosen as training chooses them.

    Each span is replaced by the mask token of ``spans.mask_kind``; Part B holds the spans
    in ``order`` (text order when None). With ``sentinels``, spans are numbered by their
    place in Part B: the first uses the plain [MASK] / [sop], the j-th [MASK_j] / [sop_j]
    (sentence and document spans keep their own mask token), and Part B's first position
    row is ``sentinel_position``.
    """
    m = len(spans.spans)
    order = np.arange(m) if order is None else np.asarray(order, dtype=np.int64)
    mask_id: int | np.ndarray = specials.mask_id(spans.mask_kind)
    sop_id: int | np.ndarray = specials.sop
    part_b_position = None
    if sentinels and m:
        if m > len(specials.sentinel_masks):
            raise ValueError(
                f"{m} spans but the tokenizer has {len(specials.sentinel_masks)} sentinels: "
                "raise data.n_sentinels"
            )
        # ``order[j]`` is the text index of Part B's j-th span, which uses [MASK_j] / [sop_j].
        sop_id = np.empty(m, dtype=np.int64)
        sop_id[order] = np.array([specials.sop, *specials.sentinel_sops[1:m]], dtype=np.int64)
        if spans.mask_kind == "MASK":
            mask_id = np.empty(m, dtype=np.int64)
            by_rank = [specials.mask, *specials.sentinel_masks[1:m]]
            mask_id[order] = np.array(by_rank, dtype=np.int64)
        part_b_position = sentinel_position
    return build_glm_sample(
        ids[: spans.keep],
        spans.spans,
        mask_id=mask_id,
        sop_id=sop_id,
        eop_id=specials.eop,
        order=order,
        part_b_position=part_b_position,
        final_eop=spans.eop,
    )


def fill_row(
    pieces: Sequence[TokenizedText],
    build: Callable[[TokenizedText, int], GLMSample | None],
    *,
    seq_len: int,
) -> list[GLMSample]:
    """One row's samples, one per piece. Piece ``j`` may use what the pieces after it leave
    free, so Part B of every piece fits: its budget is ``seq_len - used - sum(len(later))``.
    ``build(piece, budget)`` makes the sample."""
    remaining = sum(len(p) for p in pieces)
    used = 0
    samples = []
    for piece in pieces:
        remaining -= len(piece)
        budget = seq_len - used - remaining
        if budget < 2:
            break
        sample = build(piece, budget)
        samples.append(sample)
        used += len(sample)
    return samples
