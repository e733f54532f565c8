"""The positional-scheme contract."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from glmlab.model.build import build_model, positional_settings
from glmlab.model.glm import GLMConfig, GLMModel
from glmlab.plugin.guards import broadcastable, type_and_shape
from glmlab.plugin.registry import get_registry
from glmlab.structures import Batch
from glmlab.testing.base import PluginContract
from glmlab.testing.samples import collate, pack, random_glm_samples, tiny_config


class PositionalSchemeContract(PluginContract):
    """Contract tests for a positional scheme: it is an ``nn.Module``; shapes and dtypes of
    ``embed``, ``rotate`` and ``attention_bias``; a model using it runs under every
    registered mask builder, and a gradient reaches every trainable parameter of the scheme;
    building the model leaves the scheme's parameters and buffers as the scheme set them
    (a frozen or fixed table survives); and packing samples into one row changes none of
    their hidden states (the scheme reads ``position_ids``, never the column).

    ``config`` overrides the tiny model's shape (``dim``, ``n_heads``, ``max_positions``...)
    where the scheme needs, say, a head dim divisible by 4.
    """

    kind = "positional"
    config: ClassVar[dict[str, Any]] = {}

    def model(self, attention: str = "eager") -> GLMModel:
        torch.manual_seed(0)
        config = tiny_config(**self.config)
        return self.model_with(self.make(**positional_settings(config)), config, attention)

    def model_with(
        self, scheme: nn.Module, config: GLMConfig, attention: str = "eager"
    ) -> GLMModel:
        """A tiny model around an already built ``scheme``."""
        return build_model(
            config,
            positional=scheme,
            norm_layout="pre_ln",
            attention=attention,
            labels={"positional": self.label},
        )

    def batch(
        self, model: GLMModel, mask_builder: str = "glm", packed: bool = True, seed: int = 0
    ) -> Batch:
        seq_len = model.config.max_positions  # as in a run: max_positions = seq_len
        rng = np.random.default_rng(seed)
        samples = random_glm_samples(rng, 6, max_len=seq_len, sentinel_position=seq_len)
        rows = pack(samples, seq_len) if packed else [[s] for s in samples]
        return collate(rows, get_registry().create("mask_builder", mask_builder), seq_len)

    def test_builds_a_module(self) -> None:
        """A :class:`~glmlab.plugin.base.PositionalSchemeBase` (an ``nn.Module``; anything
        else is refused when built) whose modules and parameters are all registered: one
        kept in a plain list or dict is invisible to ``parameters()``, so the optimiser
        never trains it, ``.to(device)`` never moves it and checkpoints never save it."""
        scheme = self.make(**positional_settings(tiny_config(**self.config)))
        hidden = [
            f"{owner or type(scheme).__name__}.{attr}"
            for owner, module in scheme.named_modules()
            for attr, value in vars(module).items()
            if not attr.startswith("_") and _holds_unregistered(value)
        ]
        assert not hidden, (
            f"{self.label} keeps modules or parameters in plain containers {hidden}: use "
            "nn.ModuleList / nn.ModuleDict / nn.ParameterList (or register_buffer) instead"
        )

    def test_model_construction_keeps_the_schemes_own_init(self) -> None:
        """The model never re-initialises a scheme's tensors: the scheme owns its init, and
        its parameters and buffers (a frozen or fixed table included) survive."""
        config = tiny_config(**self.config)
        torch.manual_seed(0)
        scheme = self.make(**positional_settings(config))
        before = {
            name: t.detach().clone()
            for name, t in [*scheme.named_parameters(), *scheme.named_buffers()]
        }
        self.model_with(scheme, config)
        after = dict([*scheme.named_parameters(), *scheme.named_buffers()])
        changed = [n for n, t in before.items() if not torch.equal(after[n].detach(), t)]
        assert not changed, (
            f"{self.label}: building the model overwrote {changed}; a scheme's own "
            "initialisation (a frozen or fixed table included) must survive"
        )

    def test_shapes_and_dtypes(self) -> None:
        model = self.model()
        scheme, config = model.positional, model.config
        pos = self.batch(model).position_ids
        batch, length = pos.shape[0], pos.shape[-1]
        with torch.no_grad():
            emb = scheme.embed(pos)
            if emb is not None:
                assert emb.shape == (batch, length, config.dim) and emb.is_floating_point(), (
                    f"{self.label}: embed() returned {type_and_shape(emb)}, expected float {(batch, length, config.dim)}"
                )
                assert torch.isfinite(emb).all()
            for dtype in (torch.float32, torch.bfloat16):
                q, k = torch.randn(2, batch, config.n_heads, length, config.head_dim).to(dtype)
                rq, rk = scheme.rotate(q, k, pos)
                for x, rx in ((q, rq), (k, rk)):
                    assert rx.shape == x.shape and rx.dtype == dtype, (
                        f"{self.label}: rotate() turned {type_and_shape(x)} into {type_and_shape(rx)}"
                    )
                    assert torch.isfinite(rx).all()
            bias = scheme.attention_bias(pos)
            if bias is not None:
                target = (batch, config.n_heads, length, length)
                assert bias.is_floating_point() and broadcastable(tuple(bias.shape), target), (
                    f"{self.label}: attention_bias() returned {type_and_shape(bias)}, expected float "
                    f"broadcastable to {target}"
                )
                assert torch.isfinite(bias).all()

    def test_every_mask_builder(self) -> None:
        """A model using the scheme trains one step, finite, under each registered builder."""
        for builder in get_registry().names("mask_builder"):
            model = self.model()
            loss = model.loss(self.batch(model, builder))
            loss.backward()
            assert torch.isfinite(loss), f"{self.label} with mask builder '{builder}': loss {loss}"
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert all(torch.isfinite(g).all() for g in grads), (
                f"{self.label}: non-finite grad with '{builder}'"
            )
            # Finite means nothing where no gradient flows: the scheme's trainable
            # parameters must each get a nonzero one.
            dead = [
                n
                for n, p in model.positional.named_parameters()
                if p.requires_grad and (p.grad is None or not p.grad.any())
            ]
            assert not dead, (
                f"{self.label} with mask builder '{builder}': no gradient reaches {dead}"
            )

    def test_packed_rows_match_one_sample_per_row(self) -> None:
        model = self.model()
        packed, alone = self.batch(model, packed=True), self.batch(model, packed=False)
        with torch.no_grad():
            h_packed = model(packed.input_ids, packed.position_ids, packed.layout)
            h_alone = model(alone.input_ids, alone.position_ids, alone.layout)
        for i, (row, start, length, _) in enumerate(packed.layout.segments):
            torch.testing.assert_close(
                h_packed[row, start : start + length],
                h_alone[i, :length],
                atol=1e-5,
                rtol=1e-5,
                msg=lambda m, i=i: f"{self.label}: sample {i} changes when packed into a row: {m}",
            )


def _holds_unregistered(value: Any) -> bool:
    """A list, tuple or dict (nested) holding an ``nn.Module`` or an ``nn.Parameter``."""
    if isinstance(value, nn.Module | nn.Parameter):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_unregistered(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_unregistered(v) for v in value.values())
    return False
