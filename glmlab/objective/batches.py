"""From examples to batches: GLM samples are laid out in rows (packed or padded), the mask
builder describes the attention structure, and everything becomes CPU tensors.

Batch ``i`` is a pure function of (seed, i): row ``r`` takes the example at position
``i * batch_size + r`` of a seeded per-epoch permutation, its samples draw their spans
from a generator seeded with ``(seed, i, r)``, and what the objective draws once per batch
(the task, the document length) comes from one seeded with ``(seed, i, 2**32 - 1)``. Resuming at batch ``i`` therefore needs no
loader state, and loader workers need no coordination.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from glmlab.objective.base import Objective
from glmlab.structures import AttentionLayout, Batch, GLMSample, Segment, TokenizedText


class ExampleSource(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> list[TokenizedText]: ...


PrepareHost = Callable[[AttentionLayout], dict[str, Any]]
"""An attention backend's ``prepare_host``: per-batch CPU work the collator does for it;
its result lands in ``layout.host_prepared``."""


def collate_rows(
    rows: Sequence[Sequence[GLMSample]],
    *,
    seq_len: int,
    pad_id: int,
    mask_builder: object,
    prepare_host: PrepareHost | None = None,
) -> Batch:
    """Lay out each row's samples side by side (padding the rest) and build the layout;
    ``prepare_host`` (an attention backend's) fills ``layout.host_prepared``."""
    batch_size = len(rows)
    input_ids = np.full((batch_size, seq_len), pad_id, dtype=np.int64)
    position_ids = np.zeros((batch_size, 2, seq_len), dtype=np.int64)
    target_ids = np.zeros((batch_size, seq_len), dtype=np.int64)
    loss_mask = np.zeros((batch_size, seq_len), dtype=np.float32)
    segments: list[Segment] = []
    for r, samples in enumerate(rows):
        col = 0
        for s in samples:
            n = len(s)
            if col + n > seq_len:
                raise ValueError(
                    f"row {r}: samples need {col + n} columns but seq_len is {seq_len}"
                )
            input_ids[r, col : col + n] = s.input_ids
            position_ids[r, :, col : col + n] = s.position_ids
            target_ids[r, col : col + n] = s.target_ids
            loss_mask[r, col : col + n] = s.loss_mask
            segments.append(Segment(r, col, n, s.sep))
            col += n
    layout = mask_builder.build(segments, batch_size=batch_size, seq_len=seq_len)
    if prepare_host is not None:
        layout.host_prepared = prepare_host(layout)
    loss_positions = np.flatnonzero(loss_mask)
    return Batch(
        input_ids=torch.from_numpy(input_ids),
        position_ids=torch.from_numpy(position_ids),
        target_ids=torch.from_numpy(target_ids),
        loss_mask=torch.from_numpy(loss_mask),
        layout=layout,
        loss_positions=torch.from_numpy(loss_positions.astype(np.int64)),
    )


_BATCH_STREAM = 2**32 - 1  # the generator key of batch-level draws (no row has this index)


def _row_generator(seed: int, i: int, r: int) -> np.random.Generator:  # r: row or stream
    """``np.random.default_rng((seed, i, r))``, faster: given as uint32 words (when they fit),
    SeedSequence reads the same entropy without coercing a tuple element by element."""
    key = (seed, i, r)
    if all(0 <= x < 2**32 for x in key):
        return np.random.default_rng(np.array(key, dtype=np.uint32))
    return np.random.default_rng(key)


class BatchSource:
    """Deterministic, random-access batches over an example set (see the module docstring).

    ``shuffle=False`` walks the examples in order (validation). ``prepare_host`` is the
    run's attention backend's, run on every batch's layout (given when the source is built:
    the assembly pass chooses the backend first).
    """

    def __init__(
        self,
        examples: ExampleSource,
        objective: Objective,
        *,
        mask_builder: object,
        batch_size: int,
        seq_len: int,
        pad_id: int,
        seed: int,
        shuffle: bool = True,
        prepare_host: PrepareHost | None = None,
    ) -> None:
        if len(examples) == 0:
            raise ValueError(
                "the example set is empty: the corpus produced no text of at least data.min_tokens tokens"
            )
        self.examples = examples
        self.objective = objective
        self.mask_builder = mask_builder
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.pad_id = pad_id
        self.seed = seed
        self.shuffle = shuffle
        self.prepare_host = prepare_host

    @functools.lru_cache(maxsize=2)  # noqa: B019 - one source per run; epochs change rarely
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, 0x5EED, epoch)).permutation(len(self.examples))

    def example_index(self, i: int, r: int) -> int:
        g = i * self.batch_size + r
        epoch, k = divmod(g, len(self.examples))
        return int(self._permutation(epoch)[k]) if self.shuffle else k

    def rows(self, i: int) -> list[list[GLMSample]]:
        return self.objective.build_rows(
            [self.examples[self.example_index(i, r)] for r in range(self.batch_size)],
            seq_len=self.seq_len,
            rng=_row_generator(self.seed, i, _BATCH_STREAM),
            row_rngs=[_row_generator(self.seed, i, r) for r in range(self.batch_size)],
        )

    def batch(self, i: int) -> Batch:
        return collate_rows(
            self.rows(i),
            seq_len=self.seq_len,
            pad_id=self.pad_id,
            mask_builder=self.mask_builder,
            prepare_host=self.prepare_host,
        )


class BatchDataset(torch.utils.data.Dataset):
    """Map-style view of a :class:`BatchSource` for ``DataLoader(batch_size=None)``."""

    def __init__(self, source: BatchSource, length: int) -> None:
        self.source = source
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Batch:
        return self.source.batch(i)


def _identity(batch: Batch) -> Batch:
    return batch


def make_loader(source: BatchSource, *, start: int, stop: int, workers: int, pin_memory: bool):
    """Batches ``start .. stop-1`` in order, built in ``workers`` processes when > 0."""
    dataset = BatchDataset(source, stop)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
        collate_fn=_identity,
    )
