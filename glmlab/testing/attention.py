"""The attention-backend contract."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from glmlab.plugin.registry import get_registry
from glmlab.structures import AttentionLayout
from glmlab.testing.base import PluginContract
from glmlab.testing.samples import random_segments


class AttentionBackendContract(PluginContract):
    """Contract tests for an attention backend, against :func:`reference_attention` (the
    definition, in float64, with the mask read from the layout's segments) on packed,
    padded GLM layouts: outputs and gradients, the additive bias when the backend sets
    ``supports_bias``, dtypes, and padding that attends to itself.

    ``device`` is where it runs (CUDA when there is one); ``tolerance`` maps each dtype to
    test to its absolute/relative tolerance. Tests are skipped, saying so, where the
    backend's ``is_available`` says it cannot run.
    """

    kind = "attention"
    device: ClassVar[str] = "cuda" if torch.cuda.is_available() else "cpu"
    tolerance: ClassVar[dict[torch.dtype, float]] = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
    heads: ClassVar[int] = 2
    head_dim: ClassVar[int] = 16

    def backend(self) -> Any:
        backend = self.make()
        available = backend.is_available(torch.device(self.device))
        assert isinstance(available, bool), f"{self.label}: is_available() returned {available!r}"
        if not available:
            pytest.skip(f"{self.label} is not available on {self.device}")
        return backend

    def inputs(self, seed: int, dtype: torch.dtype) -> tuple[AttentionLayout, list[torch.Tensor]]:
        """A random packed, padded GLM layout and q, k, v (B, H, L, D) on ``device``."""
        rng = np.random.default_rng(seed)
        batch_size, seq_len = 3, int(rng.integers(4, 40))
        segments = random_segments(rng, batch_size, seq_len)
        layout = (
            get_registry()
            .create("mask_builder", "glm")
            .build(segments, batch_size=batch_size, seq_len=seq_len)
        )
        g = torch.Generator().manual_seed(seed)
        shape = (batch_size, self.heads, seq_len, self.head_dim)
        qkv = [torch.randn(shape, generator=g).to(self.device, dtype) for _ in range(3)]
        return layout.to(self.device), qkv

    def attend(
        self,
        backend: Any,
        layout: AttentionLayout,
        qkv: list[torch.Tensor],
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output and q/k/v gradients of ``backend`` (one prepare, as per forward)."""
        leaves = [t.detach().clone().requires_grad_() for t in qkv]
        extra = {} if bias is None else {"bias": bias}
        out = backend.attend(*leaves, backend.prepare(layout), **extra)
        as_float = out.float()
        as_float.backward(output_grad(as_float))
        return out.detach(), [t.grad for t in leaves]

    def compare(self, dtype: torch.dtype, bias_rows: str | None = None) -> None:
        """Check against the reference on three layouts. ``bias_rows``: None (no bias),
        ``"each"`` (a (B, H, L, L) bias) or ``"shared"`` ((1, H, L, L), broadcast over rows)."""
        backend = self.backend()
        tol = self.tolerance[dtype]
        for seed in range(3):
            layout, qkv = self.inputs(seed, dtype)
            bias = None
            if bias_rows is not None:
                b, h, length, _ = qkv[0].shape
                shape = (b if bias_rows == "each" else 1, h, length, length)
                bias = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
                bias = bias.to(self.device)
            out, grads = self.attend(backend, layout, qkv, bias)
            ref, ref_grads = reference_attention(layout, qkv, bias)
            assert out.shape == ref.shape and out.dtype == dtype, (
                f"{self.label}: attend() returned {out.dtype} {tuple(out.shape)} for {dtype} "
                f"queries {tuple(ref.shape)}"
            )
            torch.testing.assert_close(
                out.double(),
                ref,
                atol=tol,
                rtol=tol,
                msg=lambda m: f"{self.label} vs the reference: {m}",
            )
            for name, g, r in zip("qkv", grads, ref_grads, strict=True):
                assert g is not None, f"{self.label}: no gradient reaches {name} through attend()"
                torch.testing.assert_close(
                    g.double(),
                    r,
                    atol=10 * tol,
                    rtol=10 * tol,
                    msg=lambda m, n=name: f"{self.label} d{n} vs the reference: {m}",
                )
            pad = (layout.segment_ids == -1).unsqueeze(1).expand(-1, self.heads, -1)
            torch.testing.assert_close(
                out[pad].float(),
                qkv[2][pad].float(),
                atol=tol,
                rtol=tol,
                msg=lambda m: f"{self.label}: padding must attend to itself only: {m}",
            )

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
    def test_matches_the_reference(self, dtype: torch.dtype) -> None:
        if dtype not in self.tolerance:
            pytest.skip(f"{type(self).__name__}.tolerance declares no {dtype}")
        self.compare(dtype)

    @pytest.mark.parametrize("bias_rows", ["each", "shared"])
    def test_bias_matches_the_reference(self, bias_rows: str) -> None:
        if not self.backend().supports_bias:
            pytest.skip(f"{self.label} does not set supports_bias = True")
        self.compare(torch.float32, bias_rows)


def output_grad(out: torch.Tensor) -> torch.Tensor:
    """The gradient fed back through an attention output: distinct, nonzero almost
    everywhere, the same for every backend."""
    return torch.linspace(-1, 1, out.numel(), device=out.device, dtype=out.dtype).reshape(out.shape)


def reference_mask(layout: AttentionLayout) -> torch.Tensor:
    """(B, L, L) bool from ``layout.segments`` alone: inside each segment a query sees the
    prefix and the keys up to itself; a padding column sees only itself."""
    b, length = layout.batch_size, layout.seq_len
    mask = torch.eye(length, dtype=torch.bool).repeat(b, 1, 1)
    for row, start, n, prefix in layout.segments:
        block = torch.ones(n, n, dtype=torch.bool).tril()
        block[:, :prefix] = True
        mask[row, start : start + n, start : start + n] = block
    return mask


def reference_attention(
    layout: AttentionLayout, qkv: list[torch.Tensor], bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``softmax(Q K^T / sqrt(D) + bias)`` over the allowed keys, times ``V``, in float64
    on the CPU; and its q/k/v gradients for :func:`output_grad`. The definition every
    backend (``eager`` included) is held to."""
    leaves = [t.detach().cpu().double().requires_grad_() for t in qkv]
    q, k, v = leaves
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if bias is not None:
        scores = scores + bias.detach().cpu().double()
    allowed = reference_mask(layout.to("cpu")).unsqueeze(1)
    out = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1) @ v
    out.backward(output_grad(out))
    device = qkv[0].device
    return out.detach().to(device), [t.grad.to(device) for t in leaves]
