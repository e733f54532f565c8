"""The GLM model assembled from the built-in plugins: training, positions, norms, loss, build."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from glmlab import hookimpl
from glmlab.model.build import build_model
from glmlab.model.glm import GLMConfig, GLMModel
from glmlab.registry import PluginRegistry, UnknownPluginError, get_registry
from glmlab.structures import Batch, Segment

VOCAB, MASK, SOP, EOP = 128, 1, 2, 3


def tiny_config(**overrides) -> GLMConfig:
    shape = {"vocab_size": VOCAB, "n_layers": 2, "dim": 64, "n_heads": 4, "max_positions": 32}
    return GLMConfig(**{**shape, **overrides})


def tiny_model(
    positional: str = "learned_2d", norm_layout: str = "pre_ln", seed: int = 0, **kwargs
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
    ("rope", "deepnorm", {"norm_options": {"constants": "glm130b"}, "config": {"ffn": "geglu"}}),
]


@pytest.mark.parametrize(("positional", "norm_layout", "kwargs"), TRAIN_CASES)
def test_loss_falls(positional: str, norm_layout: str, kwargs: dict) -> None:
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
    model = build_model(tiny_config(dim=256, n_heads=4, n_layers=8), attention="sdpa")
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


def test_loss_without_loss_positions_is_zero_with_grad() -> None:
    model, batch = tiny_model(), glm_batch()
    batch.loss_mask.zero_()
    batch.loss_positions = batch.loss_positions[:0]
    loss = model.loss(batch)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_eager_and_sdpa_models_agree() -> None:
    batch = glm_batch()
    out = {}
    for name in ["eager", "sdpa"]:
        torch.manual_seed(0)
        model = build_model(tiny_config(), positional="rope_2d", attention=name)
        assert model.attention_name == name
        out[name] = model(batch.input_ids, batch.position_ids, batch.layout)
    torch.testing.assert_close(out["sdpa"], out["eager"], atol=1e-5, rtol=1e-5)


class NeverAvailable:
    def is_available(self, device: torch.device) -> bool:
        return False


class NeverAvailablePlugin:
    @hookimpl
    def glmlab_attention_backends(self):
        return {"never": NeverAvailable}


def test_attention_selection_and_errors() -> None:
    assert build_model(tiny_config(), attention="auto").attention_name == "sdpa"
    with pytest.raises(UnknownPluginError, match="no attention plugin named 'nope'"):
        build_model(tiny_config(), attention="nope")
    registry = PluginRegistry()
    registry.load_entry_points()
    registry.register(NeverAvailablePlugin(), distribution="test")
    with pytest.raises(ValueError, match=r"'never' is not available on cpu.*'eager', 'sdpa'"):
        build_model(tiny_config(), attention="never", registry=registry)


def test_geglu_inner_is_two_thirds_rounded_to_64() -> None:
    assert tiny_config(ffn="geglu").ffn_inner == 192  # 8 * 64 / 3 = 170.7 -> 192
    assert tiny_config(dim=12288, n_heads=96, ffn="geglu").ffn_inner == 32768  # GLM-130B
    assert tiny_config().ffn_inner == 256
