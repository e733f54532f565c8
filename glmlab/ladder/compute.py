"""Training compute and data, counted in one place: parameters, training tokens, FLOPs
and epochs of a run (docs/LADDERS.md).

- ``N``, non-embedding parameters: the weights and biases of every block's attention
  (``qkv``, ``out``) and MLP (``fc``, ``proj``) matrices, as in Kaplan et al. (2020). The
  total parameter count (embeddings, the untied head, positional tables, norms) is recorded
  beside it: ``total_params``, the built model's own count.
- ``D``, training tokens: every position the model runs on, ``steps x batch_size x
  grad_accum x seq_len``. Packed rows are full, and the compute is spent on all of them,
  not only on the positions whose loss is scored (GLM scores Part B only).
- ``C``, training FLOPs per token, forward and backward (x3 of the forward's 2 per
  multiply-add): ``6 N`` for the blocks' matrices; ``12 n_layers dim seq_len`` for
  attention's score and value products (PaLM, Chowdhery et al. 2022, appendix B; no saving
  for masked positions); ``6 dim V`` for the output head over the padded vocabulary ``V``
  at each *scored* position (tied or untied, the matmul is computed either way; glmlab's
  head runs only where the loss is taken, glmlab/model/loss.py: Part B for GLM, the masked
  tokens for MLM, every token for CLM, so ``head`` is ``6 dim V D f`` with ``f`` the scored
  share of positions, :func:`scored_fraction`; at CPU widths the head is a large share of
  all FLOPs: Porian et al. 2024 name leaving it out as one cause of the Kaplan /
  Chinchilla disagreement). The embedding lookup is a gather, counted as 0 FLOPs; norms,
  activations and the softmax are left out (a few percent at these shapes). ``flops_parts``
  keeps the three terms apart.
- Data: the training split's unique tokens and examples, and ``epochs`` = examples drawn /
  examples in the split (each row of a batch is one example of a per-epoch permutation,
  glmlab/objective/batches.py). Returns from repeated data fall off after about 4 epochs
  (Muennighoff et al. 2023): :data:`MAX_EPOCHS`, warned about when a run is planned past it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from glmlab.data.tokenizer import padded_vocab_size

__all__ = [
    "MAX_EPOCHS",
    "Compute",
    "DataUse",
    "ModelShape",
    "compute_record",
    "data_use",
    "non_embedding_params",
    "scored_fraction",
    "tokens_per_step",
    "training_compute",
]

MAX_EPOCHS = 4.0
"""Epochs over the training split past which a run (or a ladder rung) is warned about."""


@dataclass(frozen=True)
class ModelShape:
    """What the count needs of a model config (``model.*``) and the padded vocabulary."""

    n_layers: int
    dim: int
    ffn: str = "gelu"
    ffn_mult: int = 4
    vocab_size: int = 0  # padded rows of the output head; 0 leaves the head out (tests only)

    @property
    def ffn_inner(self) -> int:
        """The MLP's inner width, as :class:`glmlab.model.glm.GLMConfig` computes it."""
        if self.ffn == "gelu":
            return self.ffn_mult * self.dim
        return 64 * math.ceil(2 * self.ffn_mult * self.dim / 3 / 64)


@dataclass(frozen=True)
class DataUse:
    """How much of its training split a run reads (result.json's ``compute``)."""

    unique_tokens: int  # tokens of text in the training split
    examples: int  # rows the training split holds
    epochs: float  # examples drawn / examples

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Compute:
    """A run's size and training compute (recorded in result.json as ``compute``)."""

    non_embedding_params: int
    tokens: int
    flops: float
    tokens_per_step: int
    # {"blocks": 6ND, "attention": 12 n_layers dim seq_len D, "head": 6 dim V D}
    flops_parts: dict[str, float] = field(default_factory=dict)
    head_counted: bool = True  # the output head's 6 dim V per scored token is in ``flops``
    scored_fraction: float = 1.0  # the share of positions the head (and the loss) runs at
    total_params: int | None = None  # the built model's parameter count
    tokens_per_param: float | None = None  # D / total_params
    data: DataUse | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def non_embedding_params(shape: ModelShape) -> int:
    """``N``: the attention and MLP matrices of every block, biases included."""
    d, inner = shape.dim, shape.ffn_inner
    attention = (d * 3 * d + 3 * d) + (d * d + d)  # qkv, out
    fc_out = 2 * inner if shape.ffn == "geglu" else inner
    mlp = (d * fc_out + fc_out) + (inner * d + d)  # fc, proj
    return shape.n_layers * (attention + mlp)


def training_compute(
    shape: ModelShape,
    *,
    tokens_per_step: int,
    steps: int,
    seq_len: int,
    total_params: int | None = None,
    data: DataUse | None = None,
    scored_fraction: float = 1.0,
) -> Compute:
    """``N``, ``D = steps x tokens_per_step`` and ``C = (6N + 12 n_layers dim seq_len +
    6 dim V f) D`` (the module docstring; ``f``: ``scored_fraction``, 1 when unknown, an
    upper bound); ``total_params`` and ``data`` are recorded."""
    n = non_embedding_params(shape)
    tokens = steps * tokens_per_step
    parts = {
        "blocks": 6.0 * n * tokens,
        "attention": 12.0 * shape.n_layers * shape.dim * seq_len * tokens,
        "head": 6.0 * shape.dim * shape.vocab_size * tokens * scored_fraction,
    }
    return Compute(
        n,
        tokens,
        sum(parts.values()),
        tokens_per_step,
        flops_parts=parts,
        head_counted=shape.vocab_size > 0,
        total_params=total_params,
        tokens_per_param=tokens / total_params if total_params else None,
        data=data,
        scored_fraction=scored_fraction,
    )


def tokens_per_step(batch_size: int, grad_accum: int, seq_len: int) -> int:
    """Positions one optimizer step trains on (every rank's share together)."""
    return batch_size * grad_accum * seq_len


def data_use(
    *, unique_tokens: int, examples: int, steps: int, batch_size: int, grad_accum: int
) -> DataUse:
    """The epochs ``steps`` optimizer steps take over a split of ``examples`` rows."""
    drawn = steps * batch_size * grad_accum
    return DataUse(int(unique_tokens), int(examples), drawn / examples if examples else math.inf)


def compute_record(
    spec: Any,
    steps: int | None = None,
    *,
    vocab_size: int | None = None,
    total_params: int | None = None,
    train_split: tuple[int, int] | None = None,
    scored: float = 1.0,
) -> dict[str, Any]:
    """``compute`` of a run's :class:`~glmlab.config.spec.RunSpec` after ``steps`` optimizer
    steps (default: ``train.max_steps``), as result.json records it. ``vocab_size``: the
    tokenizer's (default ``data.vocab_size``), padded as the model pads it;
    ``train_split``: the training split's ``(unique tokens, examples)``, for epochs;
    ``scored``: the share of positions the head runs at (:func:`scored_fraction`)."""
    vocab = padded_vocab_size(spec.data.vocab_size if vocab_size is None else vocab_size)
    shape = ModelShape(
        spec.model.n_layers, spec.model.dim, spec.model.ffn, spec.model.ffn_mult, vocab
    )
    t = spec.train
    done = t.max_steps if steps is None else steps
    data = None
    if train_split is not None:
        data = data_use(
            unique_tokens=train_split[0],
            examples=train_split[1],
            steps=done,
            batch_size=t.batch_size,
            grad_accum=t.grad_accum,
        )
    return training_compute(
        shape,
        tokens_per_step=tokens_per_step(t.batch_size, t.grad_accum, spec.data.seq_len),
        steps=done,
        seq_len=spec.data.seq_len,
        total_params=total_params,
        data=data,
        scored_fraction=scored,
    ).to_dict()


def scored_fraction(source: Any, steps: int, *, samples: int = 16) -> float:
    """The share of a run's training positions that are scored (where the head runs),
    measured on ``samples`` batches spread over its ``steps`` (batch ``i`` is a pure
    function of the seed and ``i``: the same batches the run trained on)."""
    picks = sorted({int(k * max(steps, 1) / samples) for k in range(samples)})
    scored = total = 0
    for i in picks:
        for row in source.rows(i):
            scored += sum(int((s.loss_mask > 0).sum()) for s in row)
            total += source.seq_len
    return scored / total if total else 1.0
