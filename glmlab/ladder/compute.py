"""Training compute, counted in one place: non-embedding parameters, training tokens and
FLOPs of a run (docs/LADDERS.md).

- ``N``, non-embedding parameters: the weights and biases of every block's attention
  (``qkv``, ``out``) and MLP (``fc``, ``proj``) matrices. Token embeddings, the (tied or
  untied) output head, positional tables and LayerNorm gains are left out, as in Kaplan et
  al. (2020): they are not what 6ND counts.
- ``D``, training tokens: every position the model runs on, ``steps x batch_size x
  grad_accum x seq_len``. Packed rows are full, and the compute is spent on all of them,
  not only on the positions whose loss is scored (GLM scores Part B only).
- ``C``, training FLOPs: ``6 N D`` (forward 2ND, backward 4ND) plus attention's score and
  value products, ``12 n_layers dim seq_len`` per training token (PaLM, Chowdhery et al.
  2022, appendix B; no saving for masked positions). The output head's ``6 dim vocab`` per
  token is not counted (it is the embedding's transpose), which matters at CPU sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Compute", "ModelShape", "compute_record", "non_embedding_params", "training_compute"]


@dataclass(frozen=True)
class ModelShape:
    """What the count needs of a model config (``model.*``)."""

    n_layers: int
    dim: int
    ffn: str = "gelu"
    ffn_mult: int = 4

    @property
    def ffn_inner(self) -> int:
        """The MLP's inner width, as :class:`glmlab.model.glm.GLMConfig` computes it."""
        if self.ffn == "gelu":
            return self.ffn_mult * self.dim
        return 64 * math.ceil(2 * self.ffn_mult * self.dim / 3 / 64)


@dataclass(frozen=True)
class Compute:
    """A run's size and training compute (recorded in result.json as ``compute``)."""

    non_embedding_params: int
    tokens: int
    flops: float
    tokens_per_step: int

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
    shape: ModelShape, *, tokens_per_step: int, steps: int, seq_len: int
) -> Compute:
    """``N``, ``D = steps x tokens_per_step`` and ``C = 6ND + 12 n_layers dim seq_len D``."""
    n = non_embedding_params(shape)
    tokens = steps * tokens_per_step
    flops = 6.0 * n * tokens + 12.0 * shape.n_layers * shape.dim * seq_len * tokens
    return Compute(n, tokens, flops, tokens_per_step)


def tokens_per_step(batch_size: int, grad_accum: int, seq_len: int) -> int:
    """Positions one optimizer step trains on (every rank's share together)."""
    return batch_size * grad_accum * seq_len


def compute_record(spec: Any, steps: int | None = None) -> dict[str, Any]:
    """``compute`` of a run's :class:`~glmlab.config.spec.RunSpec` after ``steps`` optimizer
    steps (default: ``train.max_steps``), as result.json records it."""
    shape = ModelShape(spec.model.n_layers, spec.model.dim, spec.model.ffn, spec.model.ffn_mult)
    per_step = tokens_per_step(spec.train.batch_size, spec.train.grad_accum, spec.data.seq_len)
    done = spec.train.max_steps if steps is None else steps
    return training_compute(
        shape, tokens_per_step=per_step, steps=done, seq_len=spec.data.seq_len
    ).to_dict()
