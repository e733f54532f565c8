"""The sdpa backend against the eager reference on packed, padded GLM layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glmlab.registry import get_registry
from glmlab.structures import AttentionLayout, Segment


def random_layout(rng: np.random.Generator, batch_size: int, seq_len: int) -> AttentionLayout:
    """Rows packed with GLM samples from column 0, leaving trailing padding; row 0 is all padding."""
    segments = []
    for row in range(1, batch_size):
        col = 0
        while col < seq_len - 2:
            length = int(rng.integers(1, seq_len - col))
            segments.append(Segment(row, col, length, int(rng.integers(0, length + 1))))
            col += length
    return (
        get_registry()
        .create("mask_builder", "glm")
        .build(segments, batch_size=batch_size, seq_len=seq_len)
    )


def run(
    name: str, layout: AttentionLayout, qkv: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    backend = get_registry().create("attention", name)
    leaves = [t.clone().requires_grad_() for t in qkv]
    out = backend.attend(*leaves, backend.prepare(layout))
    out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("seed", range(5))
def test_sdpa_matches_eager(seed: int) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    batch_size, heads, seq_len, head_dim = 3, 2, int(rng.integers(4, 40)), 16
    layout = random_layout(rng, batch_size, seq_len)
    qkv = [torch.randn(batch_size, heads, seq_len, head_dim) for _ in range(3)]
    ref, ref_grads = run("eager", layout, qkv)
    out, grads = run("sdpa", layout, qkv)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    # Padding attends only to itself: finite, and its output is its own value.
    pad = layout.segment_ids == -1
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.transpose(1, 2)[pad], qkv[2].transpose(1, 2)[pad])


@pytest.mark.parametrize("name", ["eager", "sdpa"])
def test_available_on_cpu_and_keeps_dtype(name: str) -> None:
    backend = get_registry().create("attention", name)
    assert backend.is_available(torch.device("cpu"))
    layout = random_layout(np.random.default_rng(0), 2, 8)
    q = torch.randn(2, 2, 8, 8, dtype=torch.bfloat16)
    assert backend.attend(q, q, q, backend.prepare(layout)).dtype == torch.bfloat16
