"""The GLM model assembled from the built-in plugins: training, positions, norms, loss, build."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from glmlab import hookimpl
from glmlab.config.spec import PluginChoice
from glmlab.model import loss as chunked
from glmlab.model.build import build_model
from glmlab.model.glm import GLMConfig, GLMModel
from glmlab.plugin.base import AttentionBackendBase
from glmlab.plugin.registry import PluginRegistry, UnknownPluginError, get_registry
from glmlab.structures import Batch, Segment
from glmlab.testing.syncs import HostSyncs

VOCAB, MASK, SOP, EOP = 128, 1, 2, 3


def tiny_config(**overrides) -> GLMConfig:
    shape = {"vocab_size": VOCAB, "n_layers": 2, "dim": 64, "n_heads": 4, "max_positions": 32}
    return GLMConfig(**{**shape, **overrides})


def tiny_model(
    positional: str = "learned_2d",
    norm_layout: str | PluginChoice = "pre_ln",
    seed: int = 0,
    **kwargs,
) -> GLMModel:
    torch.manual_seed(seed)
    config = tiny_config(**kwargs.pop("config", {}))
    return build_model(
        config, positional=positional, norm_layout=norm_layout, attention="sdpa", **kwargs
    )


def glm_batch(seed: int = 0, seq_len: int = 32) -> Batch:
    """GLM samples (Part A with one [MASK], Part B = [sop] span -> span [eop]) packed into rows,
    with trailing padding; the loss mask covers each Part B."""
    g = torch.Generator().manual_seed(seed)
    rows = [[(10, 6), (8, 4)], [(20, 7)], [(6, 3), (6, 3), (5, 2)]]  # (Part A, Part B) lengths
    input_ids = torch.zeros(len(rows), seq_len, dtype=torch.long)
    target_ids = torch.zeros_like(input_ids)
    position_ids = torch.zeros(len(rows), 2, seq_len, dtype=torch.long)
    loss_mask = torch.zeros(len(rows), seq_len)
    segments = []
    for row, samples in enumerate(rows):
        col = 0
        for a, n in samples:
            part_a = torch.randint(4, VOCAB, (a,), generator=g)
            m = int(torch.randint(0, a, (1,), generator=g))
            part_a[m] = MASK
            span = torch.randint(4, VOCAB, (n - 1,), generator=g)
            b = slice(col + a, col + a + n)
            input_ids[row, col : col + a] = part_a
            input_ids[row, b] = torch.cat([torch.tensor([SOP]), span])
            target_ids[row, b] = torch.cat([span, torch.tensor([EOP])])
            position_ids[row, 0, col : col + a] = torch.arange(a)
            position_ids[row, 0, b] = m
            position_ids[row, 1, b] = torch.arange(1, n + 1)
            loss_mask[row, b] = 1.0
            segments.append(Segment(row, col, a + n, a))
            col += a + n
    builder = get_registry().create("mask_builder", "glm")
    layout = builder.build(segments, batch_size=len(rows), seq_len=seq_len)
    loss_positions = loss_mask.reshape(-1).nonzero().squeeze(1)
    return Batch(input_ids, position_ids, target_ids, loss_mask, layout, loss_positions)


TRAIN_CASES = [
    *[(p, "pre_ln", {}) for p in ["learned_2d", "learned_1d", "rope", "rope_2d"]],
    *[("learned_2d", n, {}) for n in ["post_ln", "deepnorm"]],
    # GLM-130B's choices.
    ("rope", PluginChoice("deepnorm", {"constants": "glm130b"}), {"config": {"ffn": "geglu"}}),
]


@pytest.mark.parametrize(("positional", "norm_layout", "kwargs"), TRAIN_CASES)
def test_loss_falls(positional: str, norm_layout: str | PluginChoice, kwargs: dict) -> None:
    model = tiny_model(positional, norm_layout, **dict(kwargs))
    batch = glm_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize(
    ("constants", "alpha", "beta"),
    [
        ("deepnet", lambda n: (2 * n) ** 0.25, lambda n: (8 * n) ** -0.25),
        ("glm130b", lambda n: (2 * n) ** 0.5, lambda n: (2 * n) ** -0.5),
    ],
)
def test_deepnorm_constants(constants: str, alpha, beta) -> None:
    for n in [1, 24, 70]:
        layout = get_registry().create("norm_layout", "deepnorm", n_layers=n, constants=constants)
        assert layout.alpha == pytest.approx(alpha(n)) and layout.beta == pytest.approx(beta(n))
    layout = get_registry().create("norm_layout", "deepnorm", n_layers=4, alpha=2.0, beta=0.5)
    assert (layout.alpha, layout.beta) == (2.0, 0.5)


@pytest.mark.parametrize("ffn", ["gelu", "geglu"])
def test_deepnorm_init_is_xavier_normal_with_gain_beta(ffn: str) -> None:
    """Value, attention output and both FFN matrices: Xavier-normal with gain beta; query
    and key: gain 1; nothing else scales them (no N(0, 0.02), no 1/sqrt(2N))."""
    n_layers, dim = 4, 256
    model = tiny_model(
        norm_layout="deepnorm", config={"n_layers": n_layers, "dim": dim, "ffn": ffn}
    )
    beta = (2 * n_layers) ** -0.5  # GLM-130B's constants, the default
    for block in model.blocks:
        attn, mlp = block.attn.sublayer, block.mlp.sublayer
        q, k, v = attn.qkv.weight.chunk(3)
        for w, gain in [
            (q, 1.0),
            (k, 1.0),
            (v, beta),
            (attn.out.weight, beta),
            (mlp.fc.weight, beta),
            (mlp.proj.weight, beta),
        ]:
            fan_out, fan_in = w.shape
            expected = gain * math.sqrt(2.0 / (fan_in + fan_out))
            assert w.std().item() == pytest.approx(expected, rel=0.03), (w.shape, gain)


def test_init_std() -> None:
    torch.manual_seed(0)
    model = build_model(
        tiny_config(dim=256, n_heads=4, n_layers=8),
        positional="learned_2d",
        norm_layout="pre_ln",
        attention="sdpa",
    )
    attn = model.blocks[0].attn.sublayer
    assert attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert attn.out.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert model.tok.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.positional.pos1.weight.std().item() == pytest.approx(0.02, rel=0.1)


def direct_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate-half RoPE, pair by pair: (x_i, x_{i+D/2}) turned by pos * base^(-2i/D)."""
    half = x.shape[-1] // 2
    out = x.clone()
    for i in range(half):
        angle = positions.double()[:, None, :] * base ** (-2 * i / x.shape[-1])
        cos, sin = angle.cos().float(), angle.sin().float()
        out[..., i] = x[..., i] * cos - x[..., i + half] * sin
        out[..., i + half] = x[..., i + half] * cos + x[..., i] * sin
    return out


def scheme(name: str, **options):
    return get_registry().create(
        "positional", name, dim=64, n_heads=4, head_dim=16, max_positions=32, **options
    )


def test_rope_2d_rotates_halves_by_pos1_and_pos2() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 10, 16), torch.randn(2, 4, 10, 16)
    pos = torch.randint(0, 20, (2, 2, 10))
    rq, rk = scheme("rope_2d").rotate(q, k, pos)
    for x, rx in [(q, rq), (k, rk)]:
        torch.testing.assert_close(rx[..., :8], direct_rope(x[..., :8], pos[:, 0]))
        torch.testing.assert_close(rx[..., 8:], direct_rope(x[..., 8:], pos[:, 1]))
    assert scheme("rope_2d").embed(pos) is None


# Part A at 0..3 with the mask at 2, then a span: pos1 4 4 4 2 2 -> [gMASK] rule 4+1.. 2+1..
POS = torch.tensor([[[0, 1, 2, 3, 4, 4, 4, 2, 2, 31], [0, 0, 0, 0, 0, 1, 2, 1, 2, 5]]])
POS_1D = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 3, 4, 32]])  # pos1 + pos2, clamped to 32
POS_PINNED = POS[:, 0]


# GLM-130B: a span whose mask ends Part A (pos1 4: a [gMASK] suffix) counts on, the others
# are pinned at their mask.
POS_GLM130B = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 2, 2, 31]])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"pin_part_b": False}, POS_1D),
        ({"pin_part_b": True, "suffix_counts_on": False}, POS_PINNED),
        ({}, POS_GLM130B),  # rope's default
    ],
)
def test_one_d_position_rule(options: dict, expected: torch.Tensor) -> None:
    q, k = torch.randn(2, 1, 4, 10, 16).unbind(0)
    rq, rk = scheme("rope", **options).rotate(q, k, POS)
    torch.testing.assert_close(rq, direct_rope(q, expected))
    torch.testing.assert_close(rk, direct_rope(k, expected))


@pytest.mark.parametrize(("pin", "expected"), [(False, POS_1D), (True, POS_PINNED)])
def test_learned_1d_keeps_the_block_row_as_an_indicator(pin: bool, expected) -> None:
    """The reference's --no-block-position: one position table plus the block-position
    table read at 0 in Part A and 1 in Part B."""
    learned = scheme("learned_1d", pin_part_b=pin)
    indicator = (POS[:, 1] > 0).long()
    assert indicator.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]]
    torch.testing.assert_close(
        learned.embed(POS), learned.pos.weight[expected] + learned.block.weight[indicator]
    )
    plain = scheme("learned_1d", pin_part_b=pin, block_indicator=False)
    torch.testing.assert_close(plain.embed(POS), plain.pos.weight[expected])


def test_learned_2d_sums_two_tables() -> None:
    learned = scheme("learned_2d")
    torch.testing.assert_close(
        learned.embed(POS), learned.pos1.weight[POS[:, 0]] + learned.pos2.weight[POS[:, 1]]
    )


def test_learned_2d_is_the_references_input_embedding() -> None:
    """As THUDM/GLM's GPT2ParallelTransformer with block_position_encoding: both tables
    have max_positions + 1 rows drawn N(0, 0.02), and the first layer's input is the word
    embedding plus both rows, unscaled (scripts/compare_reference_model.py runs the
    reference itself next to this model: docs/FIDELITY.md)."""
    model = tiny_model(seed=3)
    tables = (model.positional.pos1.weight, model.positional.pos2.weight)
    for table in tables:
        assert table.shape == (33, 64)
        assert table.std().item() == pytest.approx(0.02, rel=0.1)
        assert abs(table.mean().item()) < 0.002
    batch = glm_batch()
    seen: list[torch.Tensor] = []
    model.blocks[0].register_forward_pre_hook(
        lambda _m, args, _kw: seen.append(args[0]), with_kwargs=True
    )
    model(batch.input_ids, batch.position_ids, batch.layout)
    expected = (
        model.tok.weight[batch.input_ids]
        + tables[0][batch.position_ids[:, 0]]
        + tables[1][batch.position_ids[:, 1]]
    )
    torch.testing.assert_close(seen[0], expected, rtol=1e-6, atol=1e-7)  # summation order


def test_tied_and_untied_parameter_counts() -> None:
    tied, untied = tiny_model(), tiny_model(config={"tie_embeddings": False})
    assert untied.num_parameters() - tied.num_parameters() == VOCAB * 64
    embeddings = VOCAB * 64 + 2 * 33 * 64
    assert tied.num_parameters(exclude_embeddings=True) == tied.num_parameters() - embeddings
    hidden = torch.randn(3, 64)
    torch.testing.assert_close(tied.logits(hidden), hidden @ tied.tok.weight.T)
    torch.testing.assert_close(untied.logits(hidden), untied.head(hidden))


@pytest.mark.parametrize("tie", [True, False])
def test_loss_matches_full_logits_reference(tie: bool) -> None:
    model, batch = tiny_model(config={"tie_embeddings": tie}), glm_batch()
    batch.loss_mask[0, 12] = 0.5  # a fractional weight, to check the weighting
    logits = model.logits(model(batch.input_ids, batch.position_ids, batch.layout))
    ce = F.cross_entropy(logits.reshape(-1, VOCAB), batch.target_ids.reshape(-1), reduction="none")
    w = batch.loss_mask.reshape(-1)
    torch.testing.assert_close(model.loss(batch), (ce * w).sum() / w.sum())


@pytest.mark.parametrize("tie", [True, False])
def test_token_losses_are_the_terms_model_loss_averages(tie: bool) -> None:
    """Evaluation scores through the model's loss path: its per-token losses, weighted by
    the loss mask, average to ``model.loss`` and equal CE of the whole logits."""
    torch.manual_seed(0)
    model, batch = tiny_model(config={"tie_embeddings": tie}).eval(), glm_batch()
    batch.loss_mask[0, 12] = 0.5  # a fractional weight, to check the weighting
    losses, weight = model.token_losses(batch)
    assert losses.shape == weight.shape == batch.loss_positions.shape
    assert torch.allclose((losses * weight).sum() / weight.sum(), model.loss(batch), atol=1e-6)
    with torch.no_grad():
        hidden = model(batch.input_ids, batch.position_ids, batch.layout)
        where = batch.loss_positions
        logits = model.logits(hidden.reshape(-1, hidden.shape[-1])[where])
        want = F.cross_entropy(logits, batch.target_ids.reshape(-1)[where], reduction="none")
    assert torch.allclose(losses, want, atol=1e-5)


def reference_head_loss(hidden, weight, targets, scale):
    """The head and cross-entropy with the whole (n, vocab) logits."""
    return (F.cross_entropy(hidden @ weight.T, targets, reduction="none") * scale).sum()


@pytest.mark.parametrize("chunks", [1, 2, 3, 7, 40])  # 40: more chunks than rows
def test_chunked_head_loss_and_grads_equal_the_whole_logits(chunks: int) -> None:
    torch.manual_seed(chunks)
    n, dim, vocab = 29, 16, 50
    hidden, weight = torch.randn(n, dim), torch.randn(vocab, dim)
    targets = torch.randint(0, vocab, (n,))
    scale = torch.rand(n) / n
    results = []
    for fn in (chunked.linear_cross_entropy, reference_head_loss):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        extra = {"chunks": chunks} if fn is chunked.linear_cross_entropy else {}
        loss = fn(h, w, targets, scale, **extra)
        (2.5 * loss).backward()  # an incoming gradient other than 1
        results.append((loss.detach(), h.grad, w.grad))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the loss-only path
        torch.testing.assert_close(
            chunked.linear_cross_entropy(hidden, weight, targets, scale, chunks), results[1][0]
        )


class LogitRows(torch.utils._python_dispatch.TorchDispatchMode):
    """The most rows of any (rows, VOCAB) tensor an operator computed while active (views,
    such as the transposed embedding, are not computed)."""

    most = 0
    VIEWS = ("t", "transpose", "permute", "expand", "view", "_unsafe_view", "detach", "alias")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in self.VIEWS:
            return out
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor) and t.ndim == 2 and t.shape[-1] == VOCAB:
                self.most = max(self.most, t.shape[0])
        return out


@pytest.mark.parametrize("tie", [True, False])
def test_model_loss_in_chunks_equals_the_whole_logits_and_never_builds_them(
    tie: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = glm_batch()
    batch.loss_mask[0, 12] = 0.5
    n_loss = batch.n_loss_tokens
    # 12 chunks: at most 8 rows each if every one of the B * L = 96 rows were a loss row.
    monkeypatch.setattr(chunked, "LOGITS_CHUNK_BYTES", 8 * VOCAB * 4)
    assert chunked.n_chunks(batch.input_ids.numel(), VOCAB, 8 * VOCAB * 4) == 12
    models = [tiny_model(config={"tie_embeddings": tie}) for _ in range(2)]
    hidden = models[1](batch.input_ids, batch.position_ids, batch.layout)
    logits = models[1].logits(hidden)  # the reference: every position's logits
    ce = F.cross_entropy(logits.reshape(-1, VOCAB), batch.target_ids.reshape(-1), reduction="none")
    w = batch.loss_mask.reshape(-1)
    want = (ce * w).sum() / w.sum()
    want.backward()
    with LogitRows() as rows:
        got = models[0].loss(batch)
        got.backward()
    torch.testing.assert_close(got, want)
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)
    # Logits exist one chunk (n_loss / 12 rows) at a time, never for all n_loss rows.
    assert rows.most == -(-n_loss // 12) and n_loss == 25
    monkeypatch.setattr(chunked, "LOGITS_CHUNK_BYTES", 2**30)  # one chunk: all rows at once
    with LogitRows() as rows:
        models[0].loss(batch).backward()
    assert rows.most == n_loss


@pytest.mark.slow
def test_compiled_loss_has_no_graph_break_and_matches_eager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dynamo + AOTAutograd through the chunked head (the trainer compiles the loss on
    CUDA); inductor's code generation is left out (``aot_eager``) to keep this CPU-fast."""
    from torch._dynamo.utils import counters

    monkeypatch.setattr(chunked, "LOGITS_CHUNK_BYTES", 8 * VOCAB * 4)  # several chunks
    torch._dynamo.reset()
    counters.clear()
    model, reference = tiny_model(), tiny_model()
    loss = torch.compile(model.loss, backend="aot_eager")
    for seed in range(2):  # another number of loss positions: one more (dynamic) graph
        batch = glm_batch(seed)
        if seed:
            batch.loss_positions = batch.loss_positions[:-3]
        got, want = loss(batch), reference.loss(batch)
        got.backward()
        want.backward()
        torch.testing.assert_close(got, want)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5)
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] == 2


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_loss_forward_and_backward_read_nothing_back_to_the_host(attention: str) -> None:
    model = build_model(
        tiny_config(), norm_layout="pre_ln", positional="rope_2d", attention=attention
    )
    batch = glm_batch()
    with HostSyncs() as syncs:
        model.loss(batch).backward()
    assert syncs.ops == []
    with HostSyncs() as syncs:  # the detector sees what it should
        (model.loss(batch) > 0).item()
        batch.loss_mask.nonzero()
    assert syncs.ops == ["_local_scalar_dense", "nonzero"]


def test_loss_without_loss_positions_is_zero_with_grad() -> None:
    model, batch = tiny_model(), glm_batch()
    batch.loss_mask.zero_()
    batch.loss_positions = batch.loss_positions[:0]
    loss = model.loss(batch)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


class NeverAvailable(AttentionBackendBase):
    def is_available(self, device: torch.device) -> bool:
        return False


class NeverAvailablePlugin:
    @hookimpl
    def glmlab_attention_backends(self):
        return {"never": NeverAvailable}


def test_attention_selection_and_errors() -> None:
    assert (
        build_model(
            tiny_config(), positional="learned_2d", norm_layout="pre_ln", attention="auto"
        ).attention_name
        == "sdpa"
    )
    with pytest.raises(UnknownPluginError, match="no attention plugin named 'nope'"):
        build_model(tiny_config(), positional="learned_2d", norm_layout="pre_ln", attention="nope")
    registry = PluginRegistry()
    registry.load_entry_points()
    registry.register(NeverAvailablePlugin(), distribution="test")
    with pytest.raises(ValueError, match=r"'never' is not available on cpu.*'eager', 'sdpa'"):
        build_model(
            tiny_config(),
            positional="learned_2d",
            norm_layout="pre_ln",
            attention="never",
            registry=registry,
        )


def test_geglu_inner_is_two_thirds_rounded_to_64() -> None:
    assert tiny_config(ffn="geglu").ffn_inner == 192  # 8 * 64 / 3 = 170.7 -> 192
    assert tiny_config(dim=12288, n_heads=96, ffn="geglu").ffn_inner == 32768  # GLM-130B
    assert tiny_config().ffn_inner == 256
