"""Plain data types passed between the stages of the pipeline.

text -> :class:`TokenizedText` -> :class:`SpanSet` (a span sampler) -> :class:`GLMSample`
(:func:`glmlab.objective.sample.build_glm_sample`) -> :class:`Batch` (the collator, with the
:class:`AttentionLayout` from a mask builder) -> model -> loss.

Everything here is backend-neutral: samples are numpy arrays, batches are CPU tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

MaskKind = Literal["MASK", "sMASK", "gMASK"]


@dataclass(frozen=True)
class TokenizedText:
    """One piece of a document, as token ids.

    ``sentence_ends`` holds the exclusive end index of every sentence in ``ids``
    (sorted, last element == len(ids)); the sentence sampler masks whole sentences.
    """

    ids: np.ndarray  # (n,) int64
    sentence_ends: np.ndarray  # (s,) int64

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class SpanSet:
    """What a span sampler decided for one text.

    ``spans``: half-open ``(start, end)`` pairs into the first ``keep`` tokens, sorted,
    non-overlapping, each non-empty. ``keep``: how many leading tokens of the text the
    sample uses (a sampler may drop a tail so that the GLM sample fits ``max_len``).
    ``mask_kind``: which mask token replaces the spans in Part A. ``eop``: whether each
    span's targets end with [eop]; ``False`` (one span only: the reference's document-level
    suffix) lays Part B out as ``[sop] span[:-1]`` with targets ``span``.
    """

    spans: tuple[tuple[int, int], ...]
    keep: int
    mask_kind: MaskKind = "MASK"
    eop: bool = True

    @property
    def n_masked(self) -> int:
        return sum(e - s for s, e in self.spans)

    def glm_length(self) -> int:
        """Length of the GLM sample built from these spans: Part A + Part B."""
        return self.keep + 2 * len(self.spans) - (0 if self.eop or not self.spans else 1)


@dataclass(frozen=True)
class GLMSample:
    """One training sample: Part A (corrupted text) followed by Part B (the spans).

    Labels are not shifted: ``target_ids[i]`` is what input ``i`` predicts.
    ``position_ids[0]`` is the position in Part A (Part B tokens get their span's mask
    position); ``position_ids[1]`` the position inside a span (0 in Part A, 1 at [sop]).
    ``sep`` is the length of Part A: queries before ``sep`` see only Part A, queries at or
    after ``sep`` see Part A and Part B up to themselves.
    """

    input_ids: np.ndarray  # (L,) int64
    position_ids: np.ndarray  # (2, L) int64
    target_ids: np.ndarray  # (L,) int64
    loss_mask: np.ndarray  # (L,) float32
    sep: int

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class Segment:
    """Where one sample sits in a batch: ``row``, ``start`` column, ``length``, ``sep``."""

    row: int
    start: int
    length: int
    sep: int


@dataclass
class AttentionLayout:
    """The structure of a batch's attention mask, built once per batch by a mask builder.

    Every segment is a prefix-LM block: a query at absolute column ``q`` of segment ``s``
    may attend to key ``k`` iff ``k`` is in the same segment and
    ``k < s.start + s.prefix or k <= q``. Padding columns belong to no segment and attend
    only to themselves (so every softmax row is well defined).

    ``segments`` lists ``(row, start, length, prefix)`` in row-major order with no gaps
    but trailing padding; ``segment_ids`` (B, L) int32 is the segment index per column
    (-1 for padding) and ``prefix_end`` (B, L) int32 the absolute column where the
    bidirectional prefix of that column's segment ends. Backends derive their own bias
    (dense boolean mask, block-diagonal varlen biases, block masks) from these fields.

    ``host_prepared`` holds what an attention backend's ``prepare_host(layout)`` built on
    the CPU in the data collator (index tensors, block offsets, flags): its tensors are
    pinned and moved with the layout, so the forward finds them on the device.
    """

    batch_size: int
    seq_len: int
    segments: list[tuple[int, int, int, int]]
    segment_ids: torch.Tensor
    prefix_end: torch.Tensor
    host_prepared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> AttentionLayout:
        """A copy with ``fn`` applied to every tensor (device caches are not carried)."""
        return AttentionLayout(
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            segments=self.segments,
            segment_ids=fn(self.segment_ids),
            prefix_end=fn(self.prefix_end),
            host_prepared={
                k: fn(v) if isinstance(v, torch.Tensor) else v
                for k, v in self.host_prepared.items()
            },
        )

    def to(self, device: torch.device | str, non_blocking: bool = True) -> AttentionLayout:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> AttentionLayout:
        return self._map(torch.Tensor.pin_memory)

    def dense_mask(self) -> torch.Tensor:
        """Boolean (B, L, L) mask, True where attention is allowed. Reference consumer."""
        key = ("dense", self.segment_ids.device)
        if key not in self._cache:
            L = self.seq_len
            seg = self.segment_ids
            cols = torch.arange(L, device=seg.device)
            q = cols.view(1, L, 1)
            k = cols.view(1, 1, L)
            same = (seg.unsqueeze(2) == seg.unsqueeze(1)) & (seg.unsqueeze(2) >= 0)
            visible = (k < self.prefix_end.unsqueeze(2)) | (k <= q)
            mask = same & visible
            mask |= torch.eye(L, dtype=torch.bool, device=seg.device).unsqueeze(0)
            self._cache[key] = mask
        return self._cache[key]


@dataclass
class Batch:
    """A collated batch on the CPU (pinned when a loader asks for it).

    ``loss_positions`` (N,) int64 holds the flat indices (row * L + col) where
    ``loss_mask`` is non-zero, so the model computes the output head only there.
    """

    input_ids: torch.Tensor  # (B, L) int64
    position_ids: torch.Tensor  # (B, 2, L) int64
    target_ids: torch.Tensor  # (B, L) int64
    loss_mask: torch.Tensor  # (B, L) float32
    layout: AttentionLayout
    loss_positions: torch.Tensor  # (N,) int64

    @property
    def n_loss_tokens(self) -> int:
        return int(self.loss_positions.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        return Batch(
            input_ids=self.input_ids.to(device, non_blocking=non_blocking),
            position_ids=self.position_ids.to(device, non_blocking=non_blocking),
            target_ids=self.target_ids.to(device, non_blocking=non_blocking),
            loss_mask=self.loss_mask.to(device, non_blocking=non_blocking),
            layout=self.layout.to(device, non_blocking=non_blocking),
            loss_positions=self.loss_positions.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        return Batch(
            input_ids=self.input_ids.pin_memory(),
            position_ids=self.position_ids.pin_memory(),
            target_ids=self.target_ids.pin_memory(),
            loss_mask=self.loss_mask.pin_memory(),
            layout=self.layout.pin_memory(),
            loss_positions=self.loss_positions.pin_memory(),
        )


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens."""

    pad: int
    mask: int
    smask: int
    gmask: int
    sop: int
    eop: int
    sentinel_masks: tuple[int, ...]
    sentinel_sops: tuple[int, ...]

    def mask_id(self, kind: str) -> int:
        """Id of the mask token for ``kind`` in {"MASK", "sMASK", "gMASK"}."""
        try:
            return {"MASK": self.mask, "sMASK": self.smask, "gMASK": self.gmask}[kind]
        except KeyError:
            raise ValueError(f"unknown mask kind {kind!r}; expected MASK, sMASK or gMASK") from None

    @property
    def all_ids(self) -> tuple[int, ...]:
        """Every special id, in vocabulary order."""
        return (
            self.pad,
            self.mask,
            self.smask,
            self.gmask,
            self.sop,
            self.eop,
            *self.sentinel_masks,
            *self.sentinel_sops,
        )
