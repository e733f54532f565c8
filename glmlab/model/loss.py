"""The LM head and cross-entropy over the loss positions, in chunks: the (n, vocab) logits
never exist whole.

``linear_cross_entropy(hidden, weight, targets, scale)`` is ``sum(CE(hidden @ weight.T,
targets) * scale)``. The n rows are cut into a fixed number of chunks; per chunk the logits
are computed, reduced to the loss, and (when a gradient is wanted) turned into that chunk's
gradients right away: ``d loss / d logits = scale * (softmax - onehot(target))``, so
``grad_hidden = g @ weight`` and ``grad_weight += g.T @ hidden``. The backward then only
scales those by the incoming gradient. Peak memory is one chunk's logits; the head's FLOPs
are those of the unchunked forward + backward (nothing is recomputed).

The chunk count depends only on static sizes (an upper bound on the rows, and the
vocabulary), never on the number of loss positions, so a compiled step sees the same
Python loop for every batch; nothing here reads a tensor's value on the host.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import FunctionCtx

LOGITS_CHUNK_BYTES = 512 * 2**20  # fp32 logits per chunk, when every row is a loss position


def n_chunks(max_rows: int, vocab_size: int, chunk_bytes: int | None = None) -> int:
    """How many chunks keep ``max_rows`` fp32 logit rows under ``chunk_bytes`` each
    (default :data:`LOGITS_CHUNK_BYTES`)."""
    return max(1, math.ceil(max_rows * vocab_size * 4 / (chunk_bytes or LOGITS_CHUNK_BYTES)))


def _target_logit(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, targets[:, None]).squeeze(1)


def _chunk_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    scale: torch.Tensor,
    with_grads: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One chunk's ``sum(CE * scale)`` and, ``with_grads``, its gradients for ``hidden``
    and ``weight`` (fp32 for the weight, to be summed over chunks)."""
    logits = (hidden @ weight.T).float()
    lse = logits.logsumexp(dim=-1)
    loss = ((lse - _target_logit(logits, targets)) * scale).sum()
    if not with_grads:
        return loss, None, None
    g = logits.sub_(lse[:, None]).exp_().mul_(scale[:, None])  # scale * softmax, in place
    g.scatter_add_(1, targets[:, None], -scale[:, None])  # - scale at the target
    g = g.to(hidden.dtype)
    return loss, g @ weight, (g.T @ hidden).float()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        scale: torch.Tensor,
        chunks: int,
    ) -> torch.Tensor:
        loss = hidden.new_zeros((), dtype=torch.float32)
        grad_hidden = []
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        pieces = zip(*(t.tensor_split(chunks) for t in (hidden, targets, scale)), strict=True)
        for h, t, s in pieces:
            chunk_loss, gh, gw = _chunk_loss(h, weight, t, s, with_grads=True)
            loss = loss + chunk_loss
            grad_hidden.append(gh)
            grad_weight += gw
        ctx.save_for_backward(torch.cat(grad_hidden).to(hidden.dtype), grad_weight.to(weight.dtype))
        return loss

    @staticmethod
    def backward(
        ctx: FunctionCtx, grad_loss: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss, grad_weight * grad_loss, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    scale: torch.Tensor,
    chunks: int = 1,
) -> torch.Tensor:
    """``sum(cross_entropy(hidden @ weight.T, targets) * scale)`` over ``chunks`` chunks of
    rows (module docstring): ``hidden`` (n, dim), ``weight`` (vocab, dim), ``targets`` (n,)
    int64, ``scale`` (n,) float (no gradient). Without a gradient to compute (no_grad,
    frozen inputs) only the loss is computed, chunk by chunk."""
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, scale, chunks)
    loss = hidden.new_zeros((), dtype=torch.float32)
    for h, t, s in zip(*(x.tensor_split(chunks) for x in (hidden, targets, scale)), strict=True):
        loss = loss + _chunk_loss(h, weight, t, s, with_grads=False)[0]
    return loss


@torch.no_grad()
def linear_token_scores(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunks: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row (n,): ``cross_entropy(hidden @ weight.T, targets)`` (fp32) and whether the
    target's logit is the row's largest (greedy decoding would pick it; ties count), in
    ``chunks`` chunks like :func:`linear_cross_entropy`."""
    losses, greedy = [], []
    for h, t in zip(hidden.tensor_split(chunks), targets.tensor_split(chunks), strict=True):
        logits = (h @ weight.T).float()
        target = _target_logit(logits, t)
        losses.append(logits.logsumexp(dim=-1) - target)
        greedy.append(target >= logits.amax(dim=-1))
    if not losses:
        return hidden.new_zeros(0, dtype=torch.float32), hidden.new_zeros(0, dtype=torch.bool)
    return torch.cat(losses), torch.cat(greedy)


@torch.no_grad()
def linear_token_losses(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunks: int = 1
) -> torch.Tensor:
    """``cross_entropy(hidden @ weight.T, targets)`` per row (n,), fp32, in ``chunks``
    chunks like :func:`linear_cross_entropy` (what evaluation scores item by item)."""
    return linear_token_scores(hidden, weight, targets, chunks)[0]
