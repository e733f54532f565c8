"""The GLM objective: autoregressive blank infilling, plus the MLM and CLM baselines.

:func:`build_glm_sample` is the pure core that users can check by hand (its docstring
works the paper's example).

The objective classes turn a :class:`TokenizedText` into a :class:`GLMSample` that fits a
row budget; all randomness comes from the generator they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from glmlab.config.schema import ObjectiveConfig
from glmlab.plugin.base import SpanSamplerBase, adapt
from glmlab.plugin.guards import SamplerInvariantError, check_span_set, sampler_label
from glmlab.structures import GLMSample, SpanSet, SpecialTokens, TokenizedText


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


class Objective:
    """Turns texts into training samples that fit their row."""

    name: str = "objective"

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        """One sample for ``text`` in at most ``max_len`` tokens."""
        raise NotImplementedError

    def build_rows(
        self,
        rows: Sequence[Sequence[TokenizedText]],
        *,
        seq_len: int,
        rng: np.random.Generator,
        row_rngs: Sequence[np.random.Generator],
    ) -> list[list[GLMSample]]:
        """One batch: the samples of each row (its pieces side by side in ``seq_len``).
        ``rng`` draws what belongs to the whole batch, ``row_rngs[r]`` what belongs to row
        ``r``. By default every piece is built on its own (:func:`fill_row`)."""
        return [
            fill_row(pieces, lambda t, n, g=g: self.build(t, max_len=n, rng=g), seq_len=seq_len)
            for pieces, g in zip(rows, row_rngs, strict=True)
        ]


TASK_SAMPLING = ("batch", "sample")


class GLMObjective(Objective):
    """Blank infilling with a weighted mixture of span samplers (the "tasks").

    ``samplers`` is a list of ``(registry name, sampler, weight)``. ``task_sampling``:
    ``batch`` draws one sampler per batch, as the reference does; ``sample`` draws one per
    piece. ``shuffle_spans`` draws Part B's order at random (the paper's default);
    ``sentinels`` numbers the spans by their place in Part B: the first uses the plain
    [MASK] / [sop], the j-th [MASK_j] / [sop_j] (sentence and document spans keep their own
    mask token), with Part B's first position row pinned to ``sentinel_position`` (the
    "w/ sentinel tokens" ablation).

    A sampler may define ``for_batch(texts, rng)`` (what it draws once per batch, e.g. the
    document length; called with the batch's pieces) and ``sample_row(texts, max_len, rng)``
    (one budget over a packed row's pieces, e.g. sentences); see docs/PLUGINS.md.
    """

    name = "glm"

    def __init__(
        self,
        samplers: list[tuple[str, object, float]],
        specials: SpecialTokens,
        *,
        shuffle_spans: bool = ObjectiveConfig.shuffle_spans,
        sentinels: bool = ObjectiveConfig.sentinels,
        sentinel_position: int | None = None,
        check_invariants: bool = True,
        task_sampling: str = ObjectiveConfig.task_sampling,
    ) -> None:
        if not samplers:
            raise ValueError(
                "objective.samplers is empty: give at least one span sampler with weight > 0"
            )
        weights = np.asarray([w for _, _, w in samplers], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"sampler weights must be >= 0 and sum > 0, got {weights.tolist()}")
        if sentinels and (not specials.sentinel_masks or sentinel_position is None):
            raise ValueError(
                "sentinels=true needs sentinel tokens in the tokenizer and a sentinel_position"
            )
        if task_sampling not in TASK_SAMPLING:
            raise ValueError(
                f"objective.task_sampling must be one of {list(TASK_SAMPLING)}, got {task_sampling!r}"
            )
        # Duck-typed samplers get the base's defaults (for_batch, sample_row, mask_kind) once.
        self.samplers: list[tuple[str, SpanSamplerBase, float]] = [
            (name, adapt("span_sampler", sampler, sampler_label(name)), w)
            for name, sampler, w in samplers
        ]
        self.probs = weights / weights.sum()
        # The draws of rng.choice(len(samplers), p=probs), without its per-call checks of p.
        self.cdf = self.probs.cumsum()
        self.cdf /= self.cdf[-1]
        self.specials = specials
        self.shuffle_spans = shuffle_spans
        self.sentinels = sentinels
        self.sentinel_position = sentinel_position
        self.check_invariants = check_invariants
        self.task_sampling = task_sampling

    def _draw_task(self, rng: np.random.Generator) -> int:
        if len(self.samplers) == 1:
            return 0
        return int(self.cdf.searchsorted(rng.random(), "right"))

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        name, sampler, _ = self.samplers[self._draw_task(rng)]
        return self._sample(text, sampler, name, max_len=max_len, rng=rng)

    def build_rows(
        self,
        rows: Sequence[Sequence[TokenizedText]],
        *,
        seq_len: int,
        rng: np.random.Generator,
        row_rngs: Sequence[np.random.Generator],
    ) -> list[list[GLMSample]]:
        tasks = (
            [self._draw_task(rng)] if self.task_sampling == "batch" else range(len(self.samplers))
        )
        pieces = [p for row in rows for p in row]
        bound = {}
        for k in tasks:  # what a sampler draws once per batch
            name, sampler, _ = self.samplers[k]
            bound[k] = adapt(
                "span_sampler", sampler.for_batch(pieces, rng=rng), sampler_label(name)
            )
        out = []
        for row, g in zip(rows, row_rngs, strict=True):
            if self.task_sampling == "batch":
                k = tasks[0]
                name = self.samplers[k][0]
                span_sets = bound[k].sample_row(row, max_len=seq_len, rng=g)
                if span_sets is not None:  # one budget over the row's pieces
                    out.append(self._row_from_spans(row, span_sets, name, seq_len, g))
                    continue

            def build(text: TokenizedText, budget: int, g: np.random.Generator = g) -> GLMSample:
                k = tasks[0] if self.task_sampling == "batch" else self._draw_task(g)
                name = self.samplers[k][0]
                return self._sample(text, bound[k], name, max_len=budget, rng=g)

            out.append(fill_row(row, build, seq_len=seq_len))
        return out

    def _row_from_spans(
        self,
        row: Sequence[TokenizedText],
        span_sets: list[SpanSet],
        name: str,
        seq_len: int,
        rng: np.random.Generator,
    ) -> list[GLMSample]:
        if self.check_invariants and not 0 < len(span_sets) <= len(row):
            raise SamplerInvariantError(
                f"{sampler_label(name)} broke an invariant: sample_row() returned "
                f"{len(span_sets)} span sets for a row of {len(row)} pieces"
            )
        samples, used = [], 0
        for text, spans in zip(row, span_sets, strict=False):
            sample = self._from_spans(text, spans, name, max_len=seq_len - used, rng=rng)
            samples.append(sample)
            used += len(sample)
        return samples

    def _sample(
        self,
        text: TokenizedText,
        sampler: object,
        name: str,
        *,
        max_len: int,
        rng: np.random.Generator,
    ) -> GLMSample:
        spans = sampler.sample(text, max_len=max_len, rng=rng)
        return self._from_spans(text, spans, name, max_len=max_len, rng=rng)

    def _from_spans(
        self,
        text: TokenizedText,
        spans: SpanSet,
        name: str,
        *,
        max_len: int,
        rng: np.random.Generator,
    ) -> GLMSample:
        """``spans`` of ``text`` as a GLM sample: Part B's order drawn, mask tokens chosen."""
        if self.check_invariants:
            check_span_set(spans, len(text), max_len, name)
        m = len(spans.spans)
        order = rng.permutation(m) if self.shuffle_spans else np.arange(m)
        if self.sentinels and m > len(self.specials.sentinel_masks):
            raise ValueError(
                f"sampler '{name}' drew {m} spans but the tokenizer has "
                f"{len(self.specials.sentinel_masks)} sentinels: raise data.n_sentinels"
            )
        return sample_from_spans(
            text.ids,
            spans,
            self.specials,
            order=order,
            sentinels=self.sentinels,
            sentinel_position=self.sentinel_position,
        )


class MLMObjective(Objective):
    """BERT's masked LM: ``ratio`` of the tokens are predicted; of those 80% become [MASK],
    10% a random token, 10% stay. Everything is Part A (sep = length: bidirectional), the
    loss sits on the chosen positions, and targets are the original tokens in place."""

    name = "mlm"

    def __init__(
        self,
        specials: SpecialTokens,
        *,
        vocab_size: int,
        n_special: int,
        ratio: float = ObjectiveConfig.mlm_ratio,
    ) -> None:
        self.specials, self.vocab_size, self.n_special, self.ratio = (
            specials,
            vocab_size,
            n_special,
            ratio,
        )

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        ids = text.ids[:max_len]
        n = ids.shape[0]
        n_pick = max(1, round(self.ratio * n))
        picked = rng.choice(n, size=n_pick, replace=False)
        roll = rng.random(n_pick)
        inputs = ids.copy()
        inputs[picked[roll < 0.8]] = self.specials.mask
        rand = picked[(roll >= 0.8) & (roll < 0.9)]
        inputs[rand] = rng.integers(self.n_special, self.vocab_size, size=rand.shape[0])
        loss_mask = np.zeros(n, np.float32)
        loss_mask[picked] = 1.0
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(inputs, positions, ids.copy(), loss_mask, sep=n)


class CLMObjective(Objective):
    """GPT's left-to-right LM: input ``x_0..x_{n-2}`` predicts ``x_1..x_{n-1}``; sep = 0
    (fully causal), loss on every position."""

    name = "clm"

    def build(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> GLMSample:
        ids = text.ids[: max_len + 1]
        n = ids.shape[0] - 1
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(ids[:-1].copy(), positions, ids[1:].copy(), np.ones(n, np.float32), sep=0)
