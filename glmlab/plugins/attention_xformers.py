"""The ``xformers`` attention backend: GLM's prefix-LM mask as two block-diagonal varlen calls
of ``xformers.ops.memory_efficient_attention``, with no L x L mask anywhere.

Layout. The batch's (B, L) columns are flattened to one packed sequence of N = B * L tokens
(row-major, padding included): q, k and v are views of the qkv projection, not copies.

- Call A, non-causal (``BlockDiagonalMask``): blocks are every segment's Part A plus the
  stretches between them (Part B and padding), cut at row ends so no block exceeds L. Its
  output is right at every Part A query; the other blocks compute throwaway values.
- Call B, causal from the bottom right (``BlockDiagonalCausalFromBottomRightMask``): queries
  are the Part B tokens (one gather, ~20% of the tokens); keys and values are the packed
  sequence itself, in blocks of one whole segment each (so a Part B query sees its Part A
  and its Part B up to itself) and zero-query filler blocks over the rest (padding, samples
  without a Part B).
- One ``index_copy`` writes Part B's outputs, and the values at padding (padding attends
  only to itself), over call A's output. Gathers are ``index_select`` (whose backward is
  an ``index_add``, not the sort-based ``index_put`` of advanced indexing); without padding
  or without a Part B, their gathers and calls are not issued.

Throwaway outputs receive a zero gradient, so their keys and values get none either: the
result and its gradients equal the ``eager`` reference. Call A wastes about
(Part B / L)^2 (~4%) of its work on the Part B blocks; nothing else is recomputed.

Everything that depends on the batch's structure (block offsets, gather and scatter
indices, whether there is a Part A or B or padding at all) is built once per batch on the
CPU by :meth:`XFormersAttention.prepare_host`, which the data collator runs (in loader
workers) and whose tensors travel pinned with the batch. ``prepare`` builds the two
attention-bias objects from them once per forward (not per layer and call); ``attend``
then issues no host sync, builds nothing and loops over nothing. Sequence-length bounds
are the constant L, so that ``torch.compile`` sees no per-batch Python values.

xformers is imported lazily: this module imports, and registers the backend, without it;
:meth:`XFormersAttention.is_available` is true only where a real call succeeds.

``flash_varlen`` is the same plan and assembly with PyTorch's own varlen FlashAttention
(``torch.nn.attention.varlen.varlen_attn``, a custom op that ``torch.compile`` traces)
instead of xformers: the kernel xformers' ``fa2F@...-pt`` operator calls, without xformers'
per-call dispatch. Flash aligns a causal block's diagonal to its bottom right, as call B
needs; :meth:`FlashVarlenAttention.is_available` checks that on the device against a
dense computation before the backend is ever used.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from glmlab import hookimpl
from glmlab.plugin.base import AttentionBackendBase
from glmlab.structures import AttentionLayout

log = logging.getLogger("glmlab")

# The keys of its prepare_host result that this backend reads from ``layout.host_prepared``.
PLAN_KEYS = (
    "a_seqstart",
    "b_q_seqstart",
    "b_k_seqstart",
    "b_index",
    "pad_index",
    "fill_index",
    "has_part_a",
    "has_part_b",
    "has_padding",
)

# make_bias(q_seqstart, k_seqstart, max_seqlen, causal) -> the block-diagonal bias of one
# call (int32 offsets on the device; ``causal`` aligns each block's diagonal to its bottom
# right); built once per forward by ``prepare``.
BiasFactory = Callable[[torch.Tensor, torch.Tensor, int, bool], Any]
# kernel(q, k, v, bias) -> out, all (1, n, H, D): one block-diagonal varlen attention call.
VarlenKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(lo[i], hi[i])`` over i, as int64."""
    lens = hi - lo
    first = lens.cumsum() - lens
    return np.arange(int(lens.sum()), dtype=np.int64) + (lo - first).repeat(lens)


def varlen_plan(
    segments: Sequence[tuple[int, int, int, int]], batch_size: int, seq_len: int
) -> dict[str, Any]:
    """The host-side plan of the two varlen calls for a layout's ``segments``
    (``(row, start, length, prefix)``, row-major): CPU tensors and two flags.

    ``a_seqstart`` (int32): block offsets of call A (q = k = v = the packed sequence).
    ``b_q_seqstart`` / ``b_k_seqstart`` (int32): block offsets of call B's gathered Part B
    queries and of its keys (the packed sequence). ``b_index``: the flat column of each
    Part B query; ``pad_index``: the padding columns; ``fill_index``: both, concatenated
    (where call B's outputs and the padding's values land). ``has_part_a`` /
    ``has_part_b`` / ``has_padding``: whether any segment has a Part A / a Part B, and
    whether there is padding (else that call, or that gather, is skipped).
    """
    n_flat = batch_size * seq_len
    table = np.array(segments, dtype=np.int64).reshape(-1, 4)
    rows, starts, lengths, prefix = table.T
    base = rows * seq_len + starts
    part_b_start = base + prefix
    end = base + lengths
    with_a, with_b = prefix > 0, prefix < lengths
    row_ends = np.arange(0, n_flat + 1, seq_len)

    # Call A: cut at every Part A's bounds and at row ends. Each block is then one Part A or
    # a stretch holding no Part A token, and no longer than L.
    a_cuts = np.unique(np.concatenate([base[with_a], part_b_start[with_a], row_ends]))
    # Call B: key blocks are the whole segments that have a Part B, with filler blocks
    # between (cut at row ends); each segment block's queries are its Part B, fillers get none.
    k_cuts = np.unique(np.concatenate([base[with_b], end[with_b], row_ends]))
    q_lens = np.zeros(k_cuts.shape[0] - 1, dtype=np.int64)
    q_lens[k_cuts.searchsorted(base[with_b])] = (lengths - prefix)[with_b]
    q_cuts = np.concatenate([[0], q_lens.cumsum()])

    b_index = _ranges(part_b_start[with_b], end[with_b])
    pad_lo = np.concatenate([[0], end])
    pad_hi = np.concatenate([base, [n_flat]])
    pad_index = _ranges(pad_lo, pad_hi)
    return {
        "a_seqstart": torch.from_numpy(a_cuts.astype(np.int32)),
        "b_q_seqstart": torch.from_numpy(q_cuts.astype(np.int32)),
        "b_k_seqstart": torch.from_numpy(k_cuts.astype(np.int32)),
        "b_index": torch.from_numpy(b_index),
        "pad_index": torch.from_numpy(pad_index),
        "fill_index": torch.from_numpy(np.concatenate([b_index, pad_index])),
        "has_part_a": bool(with_a.any()),
        "has_part_b": bool(with_b.any()),
        "has_padding": bool(pad_index.size),
    }


class VarlenBatch(NamedTuple):
    """``prepare``'s result: each call's bias (None: no such call) and the device indices."""

    a_bias: Any
    b_bias: Any
    b_index: torch.Tensor
    pad_index: torch.Tensor
    fill_index: torch.Tensor
    has_padding: bool


def varlen_batch(host: dict[str, Any], seq_len: int, make_bias: BiasFactory) -> VarlenBatch:
    """The biases of the two calls, built once from the plan ``host`` (:func:`varlen_plan`,
    its tensors on the device), with the plan's indices."""
    a_bias = b_bias = None
    if host["has_part_a"]:
        a_bias = make_bias(host["a_seqstart"], host["a_seqstart"], seq_len, False)
    if host["has_part_b"]:
        b_bias = make_bias(host["b_q_seqstart"], host["b_k_seqstart"], seq_len, True)
    return VarlenBatch(
        a_bias, b_bias, host["b_index"], host["pad_index"], host["fill_index"], host["has_padding"]
    )


def varlen_glm_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: VarlenBatch, kernel: VarlenKernel
) -> torch.Tensor:
    """GLM attention (B, H, L, D) from ``plan`` with two ``kernel`` calls (module docstring)."""
    B, H, L, D = q.shape
    # (B, H, L, D) -> one packed (1, B*L, H, D) sequence; a view for the qkv projection's layout.
    qf, kf, vf = (t.transpose(1, 2).reshape(1, B * L, H, D) for t in (q, k, v))
    out = vf if plan.a_bias is None else kernel(qf, kf, vf, plan.a_bias)
    fill = [vf.index_select(1, plan.pad_index)] if plan.has_padding else []
    if plan.b_bias is not None:
        fill.insert(0, kernel(qf.index_select(1, plan.b_index), kf, vf, plan.b_bias))
    if fill:
        out = out.index_copy(1, plan.fill_index, fill[0] if len(fill) == 1 else torch.cat(fill, 1))
    return out.reshape(B, L, H, D).transpose(1, 2)


def xformers_bias(
    q_seqstart: torch.Tensor, k_seqstart: torch.Tensor, max_seqlen: int, causal: bool
) -> Any:
    """The xformers bias of one call over the blocks ``q_seqstart`` / ``k_seqstart``.

    Built from the device offsets directly (not ``from_seqlens``, which builds and copies
    them again). ``max_seqlen`` is a bound (flash sizes its grid with it); the Python copy
    of the offsets, which only xformers' split/materialise helpers and a bias self-check
    read, is left empty so no per-batch list reaches the forward.
    """
    from xformers.ops import fmha

    def info(seqstart: torch.Tensor) -> Any:
        return fmha.attn_bias._SeqLenInfo(
            seqstart=seqstart, max_seqlen=max_seqlen, min_seqlen=0, seqstart_py=[]
        )

    kind = (
        fmha.attn_bias.BlockDiagonalCausalFromBottomRightMask if causal else fmha.BlockDiagonalMask
    )
    return kind(q_seqinfo=info(q_seqstart), k_seqinfo=info(k_seqstart))


def xformers_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Any) -> torch.Tensor:
    """One ``memory_efficient_attention`` call with a bias from :func:`xformers_bias`."""
    from xformers.ops import fmha

    return fmha.memory_efficient_attention(q, k, v, attn_bias=bias)


@functools.cache
def _xformers_runs(device: str) -> bool:
    """Whether both varlen calls run forward and backward on ``device`` (a real probe: an
    installed xformers may still lack its CUDA operators)."""
    try:
        q = torch.randn(1, 24, 2, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
        seqstart = torch.tensor([0, 8, 24], device=device, dtype=torch.int32)
        out = xformers_kernel(q, q, q, xformers_bias(seqstart, seqstart, 16, False))
        out = out + xformers_kernel(q, q, q, xformers_bias(seqstart, seqstart, 16, True))
        out.sum().backward()
    except Exception as e:  # ImportError, missing operators, driver mismatch: all "no"
        log.info("attention backend 'xformers' unavailable on %s: %s", device, e)
        return False
    return True


class XFormersAttention(AttentionBackendBase):
    """GLM attention with xformers' block-diagonal varlen kernels (module docstring)."""

    supports_bias = False  # the flash varlen kernels take no additive bias
    make_bias: BiasFactory = staticmethod(lambda *args: xformers_bias(*args))
    kernel: VarlenKernel = staticmethod(lambda *args: xformers_kernel(*args))

    def is_available(self, device: torch.device) -> bool:
        return device.type == "cuda" and torch.cuda.is_available() and _xformers_runs(str(device))

    def prepare_host(self, layout: AttentionLayout) -> dict[str, Any]:
        """The batch's varlen plan (:func:`varlen_plan`), on the CPU; run by the collator."""
        return varlen_plan(layout.segments, layout.batch_size, layout.seq_len)

    def prepare(self, layout: AttentionLayout) -> VarlenBatch:
        host = layout.host_prepared
        if not all(key in host for key in PLAN_KEYS):
            host = self._plan_here(layout)
        return varlen_batch(host, layout.seq_len, self.make_bias)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prepared: VarlenBatch,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if bias is not None:
            raise ValueError(f"the {type(self).__name__} backend takes no additive attention bias")
        return varlen_glm_attention(q, k, v, prepared, self.kernel)

    def _plan_here(self, layout: AttentionLayout) -> dict[str, Any]:
        """The plan for a batch that did not come through a collator running
        :meth:`prepare_host`: built from the segment list (host data, so still no sync),
        pinned and copied asynchronously, at the cost of CPU time in the training loop."""
        _warn_once()
        device = layout.segment_ids.device
        plan = self.prepare_host(layout)
        for key, value in plan.items():
            if isinstance(value, torch.Tensor) and device.type == "cuda":
                plan[key] = value.pin_memory().to(device, non_blocking=True)
            elif isinstance(value, torch.Tensor):
                plan[key] = value.to(device)
        return plan


try:  # PyTorch's varlen flash attention (torch >= 2.9)
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # an older torch: flash_varlen is unavailable
    varlen_attn = None

# How this torch's varlen_attn makes a block causal, aligned bottom-right: a (-1, 0) window
# (torch >= 2.10), else ``is_causal``. Decided here, not in the (compiled) forward.
VARLEN_CAUSAL: dict[str, Any] = (
    {"window_size": (-1, 0)}
    if varlen_attn is not None and "window_size" in inspect.signature(varlen_attn).parameters
    else {"is_causal": True}
)


def torch_varlen_bias(
    q_seqstart: torch.Tensor, k_seqstart: torch.Tensor, max_seqlen: int, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """``flash_varlen``'s "bias": the block offsets, the bound and the causal flag."""
    return q_seqstart, k_seqstart, max_seqlen, causal


def torch_varlen_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: tuple[torch.Tensor, torch.Tensor, int, bool],
) -> torch.Tensor:
    """One call of PyTorch's varlen flash attention on (1, n, H, D) inputs; causal blocks
    are aligned bottom-right (:data:`VARLEN_CAUSAL`)."""
    q_seqstart, k_seqstart, max_seqlen, causal = bias
    extra = VARLEN_CAUSAL if causal else {}
    out = varlen_attn(q[0], k[0], v[0], q_seqstart, k_seqstart, max_seqlen, max_seqlen, **extra)
    return out.unsqueeze(0)


@functools.cache
def _torch_varlen_runs(device: str) -> bool:
    """Whether ``flash_varlen`` runs forward and backward on ``device``, on q, k, v laid out
    as the model's qkv projection makes them, with causal blocks aligned bottom-right: a
    GLM-shaped probe against a dense computation."""
    try:
        torch.manual_seed(0)
        qkv = torch.randn(1, 24, 3 * 2 * 64, device=device, dtype=torch.bfloat16)
        qkv.requires_grad_()
        q, k, v = qkv.view(1, 24, 3, 2, 64).unbind(2)  # views: token stride 3 * H * D
        q_lens, k_lens = [0, 4, 10], [0, 8, 24]  # two blocks: 4 queries / 8 keys, 6 / 16
        seqstarts = [torch.tensor(x, device=device, dtype=torch.int32) for x in (q_lens, k_lens)]
        out = torch_varlen_kernel(q[:, :10], k, v, (*seqstarts, 16, True))
        out.float().sum().backward()
        for (q0, q1), (k0, k1) in zip(
            itertools.pairwise(q_lens), itertools.pairwise(k_lens), strict=True
        ):
            allowed = torch.ones(q1 - q0, k1 - k0, device=device).tril(k1 - k0 - q1 + q0).bool()
            want = torch.nn.functional.scaled_dot_product_attention(
                *(
                    t[0, a:b].transpose(0, 1).float()
                    for t, a, b in [(q, q0, q1), (k, k0, k1), (v, k0, k1)]
                ),
                attn_mask=allowed,
            ).transpose(0, 1)
            if not torch.allclose(out[0, q0:q1].float(), want, atol=2e-2, rtol=2e-2):
                raise RuntimeError("causal blocks are not aligned bottom-right")
    except Exception as e:  # no varlen_attn, no kernel, another alignment: all "no"
        log.info("attention backend 'flash_varlen' unavailable on %s: %s", device, e)
        return False
    return True


class FlashVarlenAttention(XFormersAttention):
    """The ``xformers`` plan and assembly with PyTorch's own varlen flash kernel."""

    make_bias: BiasFactory = staticmethod(lambda *args: torch_varlen_bias(*args))
    kernel: VarlenKernel = staticmethod(lambda *args: torch_varlen_kernel(*args))

    def is_available(self, device: torch.device) -> bool:
        return (
            device.type == "cuda" and torch.cuda.is_available() and _torch_varlen_runs(str(device))
        )


@functools.cache
def _warn_once() -> None:
    log.warning(
        "attention backend 'xformers': a batch arrived without its prepare_host result; building it in "
        "the forward. Give the BatchSource prepare_host=backend.prepare_host to keep it off the "
        "training loop."
    )


@hookimpl
def glmlab_attention_backends() -> dict[str, type[XFormersAttention]]:
    return {"xformers": XFormersAttention, "flash_varlen": FlashVarlenAttention}
