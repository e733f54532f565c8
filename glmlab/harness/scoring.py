"""Batched scoring and greedy generation for the harness model: samples laid out by a
reader (:mod:`glmlab.harness.readers`), collated as training collates them, scored through
the model's one loss path (:meth:`GLMModel.token_scores`); bf16 autocast on CUDA, exact
fp32 on the CPU (the trainer's and the evaluation suite's policy)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from glmlab.model.glm import GLMModel
from glmlab.objective.batches import PrepareHost, collate_rows
from glmlab.structures import Batch, GLMSample

__all__ = ["Collator", "next_token_logits", "score_samples"]


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


BUCKET = 64  # rows are padded to a multiple of this: few shapes for compiled kernels (flex)


class Collator:
    """Samples to a :class:`Batch` on the model's device: each row one sample, padded to
    the longest rounded up to :data:`BUCKET` (at most ``max_len``, the model's positions),
    with the run's mask builder and the backend's ``prepare_host``."""

    def __init__(
        self,
        *,
        mask_builder: object,
        pad_id: int,
        device: torch.device,
        max_len: int,
        prepare_host: PrepareHost | None = None,
    ) -> None:
        self.mask_builder = mask_builder
        self.pad_id = pad_id
        self.device = device
        self.max_len = max_len
        self.prepare_host = prepare_host

    def __call__(self, samples: Sequence[GLMSample]) -> tuple[Batch, int]:
        """The batch and its row length."""
        longest = max(len(s) for s in samples)
        seq_len = max(longest, min(-(-longest // BUCKET) * BUCKET, self.max_len))
        batch = collate_rows(
            [[s] for s in samples],
            seq_len=seq_len,
            pad_id=self.pad_id,
            mask_builder=self.mask_builder,
            prepare_host=self.prepare_host,
        )
        return batch.to(self.device), seq_len


def _batches(
    order: Sequence[int], batch_size: int, desc: str, progress: bool
) -> Iterator[Sequence[int]]:
    starts = range(0, len(order), batch_size)
    bar = tqdm(starts, desc=desc, unit="batch", disable=not (progress and sys.stderr.isatty()))
    for a in bar:
        yield order[a : a + batch_size]


@torch.no_grad()
def score_samples(
    model: GLMModel,
    samples: Sequence[GLMSample],
    collate: Collator,
    *,
    batch_size: int,
    progress: bool = False,
    desc: str = "harness",
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the summed log-probability of its scored targets, and whether every one
    of them is the most likely token at its position. Longest samples first, ``batch_size``
    per forward; ``progress``: a bar on a terminal."""
    n = len(samples)
    logp = np.zeros(n, np.float64)
    greedy = np.ones(n, bool)
    order = sorted(range(n), key=lambda i: -len(samples[i]))
    for chunk in _batches(order, batch_size, desc, progress):
        batch, seq_len = collate([samples[i] for i in chunk])
        with _autocast(collate.device):
            losses, weight, is_max = model.token_scores(batch)
        rows = torch.div(batch.loss_positions, seq_len, rounding_mode="floor")
        zeros = torch.zeros(len(chunk), dtype=torch.float64, device=losses.device)
        sums = zeros.index_add(0, rows, (-losses * weight).double())
        misses = zeros.index_add(0, rows, ((~is_max).double() * weight.double()))
        idx = np.asarray(chunk)
        logp[idx] = sums.cpu().numpy()
        greedy[idx] = misses.cpu().numpy() == 0
    return logp, greedy


@torch.no_grad()
def next_token_logits(
    model: GLMModel, prompts: Sequence[tuple[GLMSample, int]], collate: Collator
) -> torch.Tensor:
    """(len(prompts), vocab) fp32 logits at each prompt's query position."""
    batch, _ = collate([s for s, _ in prompts])
    with _autocast(collate.device):
        hidden = model(batch.input_ids, batch.position_ids, batch.layout)
        rows = torch.arange(len(prompts), device=hidden.device)
        at = torch.as_tensor([q for _, q in prompts], device=hidden.device)
        return model.logits(hidden[rows, at]).float()
