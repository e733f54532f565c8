"""The ``xformers`` and ``flex`` backends against ``eager`` on random packed, padded layouts.

On the CPU: the xformers backend's host plan (block offsets, gather indices) against the
layout, and its whole two-call assembly, forward and backward, with a reference kernel of
xformers' block-diagonal semantics standing in for the CUDA one; flex's forward (torch 2.13
has no FlexAttention backward on the CPU). On CUDA (``-m gpu``): every available backend,
forward and backward in bf16, and the compiled model's loss.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from glmlab.model.build import build_model
from glmlab.model.glm import GLMConfig
from glmlab.objective.batches import BatchSource
from glmlab.objective.glm import GLMObjective
from glmlab.plugin.registry import get_registry
from glmlab.plugins import attention_xformers
from glmlab.plugins.attention_xformers import (
    varlen_batch,
    varlen_glm_attention,
    varlen_plan,
)
from glmlab.structures import AttentionLayout, Segment, SpecialTokens, TokenizedText
from glmlab.testing.samples import random_segments
from glmlab.testing.syncs import HostSyncs

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA: xformers/flex training paths")


def random_layout(rng: np.random.Generator, batch_size: int, seq_len: int) -> AttentionLayout:
    """The glm layout of the conformance kit's random packed, padded segments (seps 0 and
    full length included, some rows empty)."""
    segments = random_segments(rng, batch_size, seq_len)
    builder = get_registry().create("mask_builder", "glm")
    return builder.build(segments, batch_size=batch_size, seq_len=seq_len)


def reference_mask(
    q_seqstart: torch.Tensor, k_seqstart: torch.Tensor, causal: bool
) -> torch.Tensor:
    """xformers' ``BlockDiagonalMask`` (``causal``: ``BlockDiagonalCausalFromBottomRightMask``)
    as a dense (queries, keys) boolean mask; checks the preconditions those biases state."""
    qs, ks = q_seqstart.tolist(), k_seqstart.tolist()
    assert len(qs) == len(ks) and qs[0] == ks[0] == 0
    mask = torch.zeros(qs[-1], ks[-1], dtype=torch.bool)
    for q0, q1, k0, k1 in zip(qs, qs[1:], ks, ks[1:], strict=False):
        assert not causal or q1 - q0 <= k1 - k0  # bottom-right: every query sees a key
        for i in range(q1 - q0):
            last = k1 - (q1 - q0) + i if causal else k1 - 1
            mask[q0 + i, k0 : last + 1] = True
    return mask


def reference_bias(
    q_seqstart: torch.Tensor, k_seqstart: torch.Tensor, max_seqlen: int, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """The bias factory's arguments, kept for :func:`reference_kernel`."""
    return q_seqstart, k_seqstart, max_seqlen, causal


def reference_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: tuple[torch.Tensor, torch.Tensor, int, bool],
) -> torch.Tensor:
    """The varlen kernel's contract on (1, n, H, D) inputs, computed densely."""
    q_seqstart, k_seqstart, max_seqlen, causal = bias
    assert all(int(torch.diff(s).max()) <= max_seqlen for s in (q_seqstart, k_seqstart))
    mask = reference_mask(q_seqstart, k_seqstart, causal)
    assert mask.shape == (q.shape[1], k.shape[1])
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * q.shape[-1] ** -0.5
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num()
    return torch.einsum("bhqk,bkhd->bqhd", probs, v.float()).to(q.dtype)


@pytest.mark.parametrize("causal", [False, True])
def test_reference_mask_is_xformers_definition(causal: bool) -> None:
    """The reference kernel's masks against xformers' own ``materialize`` (needs xformers,
    not CUDA), zero-query blocks included."""
    fmha = pytest.importorskip("xformers.ops.fmha")
    q_lens, k_lens = ([3, 0, 5, 1], [3, 2, 7, 1]) if causal else ([3, 2, 5], [3, 2, 5])
    kind = (
        fmha.attn_bias.BlockDiagonalCausalFromBottomRightMask if causal else fmha.BlockDiagonalMask
    )
    bias = kind.from_seqlens(q_lens, k_lens, device=torch.device("cpu"))
    dense = bias.materialize((sum(q_lens), sum(k_lens))) == 0
    offsets = [torch.tensor([0, *itertools.accumulate(lens)]) for lens in (q_lens, k_lens)]
    assert torch.equal(reference_mask(*offsets, causal), dense)


def fwd_bwd(
    attend, qkv: list[torch.Tensor], grad: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [t.detach().clone().requires_grad_() for t in qkv]
    out = attend(*leaves)
    out.backward(grad)
    return out.detach(), [torch.zeros_like(t) if t.grad is None else t.grad for t in leaves]


def eager(layout: AttentionLayout):
    backend = get_registry().create("attention", "eager")
    prepared = backend.prepare(layout)
    return lambda q, k, v: backend.attend(q, k, v, prepared)


# -- xformers host plan (pure CPU logic) --------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_varlen_plan_matches_layout(seed: int) -> None:
    rng = np.random.default_rng(seed)
    B, L = int(rng.integers(1, 4)), int(rng.integers(1, 24))
    layout = random_layout(rng, B, L)
    plan = varlen_plan(layout.segments, B, L)
    seg = layout.segment_ids.reshape(-1)
    cols = torch.arange(B * L)
    part_a = (seg >= 0) & (cols % L < layout.prefix_end.reshape(-1))
    part_b = (seg >= 0) & ~part_a

    # Gather and scatter indices: Part B in column order, then the padding.
    assert plan["b_index"].tolist() == torch.nonzero(part_b).flatten().tolist()
    assert plan["pad_index"].tolist() == torch.nonzero(seg < 0).flatten().tolist()
    assert torch.equal(plan["fill_index"], torch.cat([plan["b_index"], plan["pad_index"]]))
    assert (plan["has_part_a"], plan["has_part_b"], plan["has_padding"]) == (
        bool(part_a.any()),
        bool(part_b.any()),
        bool((seg < 0).any()),
    )

    # Call A: blocks tile all N columns, at most L long; each is one whole Part A or holds none.
    a = plan["a_seqstart"].tolist()
    assert plan["a_seqstart"].dtype == torch.int32 and a[0] == 0 and a[-1] == B * L
    blocks = [set(range(s, e)) for s, e in itertools.pairwise(a)]
    assert all(0 < len(b) <= L for b in blocks)
    parts_a = [set(range(r * L + s, r * L + s + p)) for r, s, _, p in layout.segments if p > 0]
    for block in blocks:
        assert block in parts_a or not block & set(torch.nonzero(part_a).flatten().tolist())
    assert all(p in blocks for p in parts_a)

    # Call B: key blocks tile all N columns; a block with queries is exactly one segment, and
    # its queries are that segment's Part B.
    qs, ks = plan["b_q_seqstart"].tolist(), plan["b_k_seqstart"].tolist()
    assert len(qs) == len(ks) and ks[0] == 0 and ks[-1] == B * L and qs[-1] == part_b.sum()
    with_b = [(r * L + s, r * L + s + n, n - p) for r, s, n, p in layout.segments if p < n]
    key_blocks = [
        (k0, k1, q1 - q0) for k0, k1, q0, q1 in zip(ks, ks[1:], qs, qs[1:], strict=False) if q1 > q0
    ]
    assert key_blocks == with_b
    assert all(0 < k1 - k0 <= L for k0, k1 in itertools.pairwise(ks))


@pytest.mark.parametrize("seed", range(15))
def test_varlen_assembly_matches_eager(seed: int) -> None:
    """The two calls, the gather and the scatter, with the reference kernel: the output and
    every gradient equal eager's (throwaway outputs must pass no gradient)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    B, L = int(rng.integers(1, 4)), int(rng.integers(1, 24))
    layout = random_layout(rng, B, L)
    plan = varlen_batch(varlen_plan(layout.segments, B, L), L, reference_bias)
    qkv = [torch.randn(B, 2, L, 8) for _ in range(3)]
    grad = torch.randn(B, 2, L, 8)
    out, grads = fwd_bwd(
        lambda q, k, v: varlen_glm_attention(q, k, v, plan, reference_kernel), qkv, grad
    )
    ref, ref_grads = fwd_bwd(eager(layout), qkv, grad)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("segments", "calls", "gathers"),
    [
        ([Segment(0, 0, 8, 5), Segment(1, 0, 6, 6)], ["A", "B"], 2),  # padding, Parts A and B
        ([Segment(0, 0, 8, 5), Segment(1, 0, 8, 3)], ["A", "B"], 1),  # no padding
        ([Segment(0, 0, 8, 8), Segment(1, 0, 5, 5)], ["A"], 1),  # no Part B
        ([Segment(0, 0, 8, 0), Segment(1, 0, 8, 0)], ["B"], 1),  # no Part A, no padding
    ],
)
def test_biases_are_built_once_per_batch_and_skipped_calls_cost_nothing(
    segments: list[Segment], calls: list[str], gathers: int
) -> None:
    """``prepare`` builds each call's bias once; ``attend``, run as every layer of a model
    would, builds none, reads nothing back to the host, gathers with ``index_select`` (not
    advanced indexing, whose backward sorts) and issues only the calls the batch needs."""
    layout = get_registry().create("mask_builder", "glm").build(segments, batch_size=2, seq_len=8)
    built, called = [], []

    def make_bias(q_seqstart, k_seqstart, max_seqlen, causal):
        built.append("B" if causal else "A")
        return built[-1]

    def kernel(q, k, v, bias):
        called.append(bias)
        return q * 2.0

    plan = varlen_batch(varlen_plan(layout.segments, 2, 8), 8, make_bias)
    assert built == calls
    q, k, v = (torch.randn(2, 2, 8, 4, requires_grad=True) for _ in range(3))
    with HostSyncs() as syncs, OpNames() as ops:
        for _layer in range(3):
            varlen_glm_attention(q, k, v, plan, kernel).sum().backward()
    assert built == calls and called == calls * 3
    assert syncs.ops == []
    assert ops.count("index_select") == 3 * (gathers + 1)  # + index_copy's backward
    assert not {"index", "index_put", "index_put_", "_index_put_impl_", "sort"} & set(ops.names)


@pytest.mark.parametrize("seed", range(5))
def test_flash_varlen_prepares_the_same_calls(seed: int) -> None:
    """``flash_varlen`` hands its kernel the plan's offsets, bound and causal flag: with the
    reference kernel in place of torch's CUDA one, its output and gradients equal eager's."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    layout = random_layout(rng, 3, int(rng.integers(2, 24)))
    backend = get_registry().create("attention", "flash_varlen")
    layout.host_prepared = backend.prepare_host(layout)
    plan = backend.prepare(layout)
    qkv = [torch.randn(3, 2, layout.seq_len, 8) for _ in range(3)]
    grad = torch.randn(3, 2, layout.seq_len, 8)
    out, grads = fwd_bwd(
        lambda q, k, v: varlen_glm_attention(q, k, v, plan, reference_kernel), qkv, grad
    )
    ref, ref_grads = fwd_bwd(eager(layout), qkv, grad)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


class OpNames(TorchDispatchMode):
    """The aten operators dispatched while active, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def count(self, name: str) -> int:
        return self.names.count(name)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_xformers_prepare_reads_the_host_plan_or_builds_it(monkeypatch) -> None:
    monkeypatch.setattr(attention_xformers, "xformers_bias", reference_bias)
    backend = get_registry().create("attention", "xformers")
    layout = random_layout(np.random.default_rng(0), 3, 16)
    from_forward = backend.prepare(layout)  # no host plan: built in place (and warned)
    layout.host_prepared = backend.prepare_host(layout)
    from_host = backend.prepare(layout.to("cpu"))
    flat = [torch.utils._pytree.tree_leaves(p) for p in (from_host, from_forward)]
    assert len(flat[0]) == len(flat[1]) > 5
    for a, b in zip(*flat, strict=True):
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_batch_source_runs_prepare_host_and_batches_carry_it() -> None:
    specials = SpecialTokens(0, 1, 2, 3, 4, 5, (), ())
    sampler = get_registry().create("span_sampler", "token")
    texts = [[TokenizedText(np.arange(6, 60), np.array([54]))] for _ in range(4)]
    backend = get_registry().create("attention", "xformers")
    source = BatchSource(
        texts,
        GLMObjective([("token", sampler, 1.0)], specials),
        mask_builder=get_registry().create("mask_builder", "glm"),
        batch_size=2,
        seq_len=64,
        pad_id=0,
        seed=0,
        prepare_host=backend.prepare_host,
    )
    batch = source.batch(0)
    expected = varlen_plan(batch.layout.segments, 2, 64)
    moved = batch.to("cpu").layout.host_prepared
    assert moved.keys() == expected.keys()
    for key, value in expected.items():
        assert (
            torch.equal(moved[key], value)
            if isinstance(value, torch.Tensor)
            else (moved[key] == value)
        )


@pytest.mark.parametrize("name", ["xformers", "flex", "flash_varlen"])
def test_gpu_backends_are_registered_and_refuse_the_cpu(name: str) -> None:
    backend = get_registry().create("attention", name)
    assert not backend.is_available(torch.device("cpu"))
    assert backend.supports_bias is False


# -- flex --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("seed", range(4))
def test_flex_forward_matches_eager_on_cpu(seed: int) -> None:
    """Forward only: torch 2.13's FlexAttention has no CPU backward (the GPU test covers it)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    layout = random_layout(rng, 2, int(rng.integers(4, 40)))
    backend = get_registry().create("attention", "flex")
    q, k, v = (torch.randn(2, 2, layout.seq_len, 16) for _ in range(3))
    with torch.no_grad():
        out = backend.attend(q, k, v, backend.prepare(layout))
    torch.testing.assert_close(out, eager(layout)(q, k, v), atol=1e-5, rtol=1e-5)


# -- CUDA --------------------------------------------------------------------------------


def gpu_backend(name: str):
    backend = get_registry().create("attention", name)
    if not backend.is_available(torch.device("cuda")):
        pytest.skip(f"attention backend '{name}' is not available on this GPU (see the log)")
    return backend


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", ["xformers", "flash_varlen", "flex", "sdpa"])
@pytest.mark.parametrize("seed", range(3))
def test_backend_matches_eager_on_gpu(name: str, seed: int) -> None:
    backend = gpu_backend(name)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    layout = random_layout(rng, 3, [64, 200, 512][seed])
    if hasattr(backend, "prepare_host"):
        layout.host_prepared = backend.prepare_host(layout)
    layout = layout.to("cuda")
    prepared = backend.prepare(layout)
    shape = (3, 4, layout.seq_len, 64)
    qkv = [torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    grad = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    out, grads = fwd_bwd(lambda q, k, v: backend.attend(q, k, v, prepared), qkv, grad)
    ref, ref_grads = fwd_bwd(eager(layout), qkv, grad)  # fp32 math on the same bf16 inputs
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=5e-2, rtol=5e-2)


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
@pytest.mark.parametrize("name", ["xformers", "flash_varlen", "flex"])
def test_compiled_model_loss_matches_eager_on_gpu(name: str) -> None:
    """The trainer's path: host plan in the collator, pinned batch, compiled loss, bf16."""
    gpu_backend(name)
    config = GLMConfig(vocab_size=512, n_layers=2, dim=128, n_heads=2, max_positions=256)
    torch.manual_seed(0)
    model = build_model(
        config, positional="learned_2d", norm_layout="pre_ln", attention=name, device="cuda"
    )
    reference = build_model(
        config, positional="learned_2d", norm_layout="pre_ln", attention="eager", device="cuda"
    )
    reference.load_state_dict(model.state_dict())
    specials = SpecialTokens(0, 1, 2, 3, 4, 5, (), ())
    sampler = get_registry().create("span_sampler", "token")
    rng = np.random.default_rng(0)
    texts = [[TokenizedText(rng.integers(6, 512, 100), np.array([100]))] * 2 for _ in range(8)]
    source = BatchSource(
        texts,
        GLMObjective([("token", sampler, 1.0)], specials),
        mask_builder=get_registry().create("mask_builder", "glm"),
        batch_size=4,
        seq_len=256,
        pad_id=0,
        seed=0,
        prepare_host=model.attention.prepare_host,
    )
    loss = torch.compile(model.loss)
    for i in range(3):  # new shapes per batch: recompiles must stay correct
        batch = source.batch(i).pin_memory().to("cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got, want = loss(batch), reference.loss(batch)
        torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)
