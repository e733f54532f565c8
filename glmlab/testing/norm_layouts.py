"""The norm-layout contract."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from glmlab.model.build import build_model, norm_settings
from glmlab.model.glm import MLP, Attention, GLMModel
from glmlab.plugin.guards import type_and_shape
from glmlab.plugin.registry import get_registry
from glmlab.structures import Batch
from glmlab.testing.base import PluginContract
from glmlab.testing.samples import collate, pack, random_glm_samples, tiny_config


class NormLayoutContract(PluginContract):
    """Contract tests for a norm layout: ``wrap`` and ``final_norm`` build modules that
    keep shapes; a model is finite at init (forward and gradients) for every depth in
    ``depths``; and a few optimiser steps on a tiny model cut its loss on a fixed batch
    to below ``loss_ratio`` of the first.
    """

    kind = "norm_layout"
    depths: ClassVar[tuple[int, ...]] = (1, 12)
    steps: ClassVar[int] = 25
    loss_ratio: ClassVar[float] = 0.8

    def model(self, n_layers: int = 2) -> GLMModel:
        torch.manual_seed(0)
        config = tiny_config(n_layers=n_layers)
        return build_model(
            config,
            positional="learned_2d",
            norm_layout=self.make(**norm_settings(config)),
            attention="eager",
            labels={"norm_layout": self.label},
        )

    @staticmethod
    def batch(seq_len: int) -> Batch:
        samples = random_glm_samples(np.random.default_rng(0), 8, max_len=seq_len)
        return collate(
            pack(samples, seq_len), get_registry().create("mask_builder", "glm"), seq_len
        )

    def test_wrap_and_final_norm_keep_shapes(self) -> None:
        config = tiny_config()
        layout = self.make(**norm_settings(config))
        x = torch.randn(2, 5, config.dim)
        calls = []

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            calls.append(q.shape)
            return v

        for kind, sublayer, kwargs in [
            ("attention", Attention(config), {"rotate": lambda q, k: (q, k), "attend": attend}),
            ("mlp", MLP(config), {}),
        ]:
            wrapped = layout.wrap(sublayer, config.dim, kind)
            assert isinstance(wrapped, nn.Module), (
                f"{self.label}: wrap() returned {type_and_shape(wrapped)}"
            )
            y = wrapped(x, **kwargs)
            assert y.shape == x.shape and torch.isfinite(y).all(), (
                f"{self.label}: {kind} block gave {type_and_shape(y)}"
            )
        assert calls, (
            f"{self.label}: the wrapped attention never reached its sublayer's keyword arguments"
        )
        norm = layout.final_norm(config.dim)
        assert isinstance(norm, nn.Module) and norm(x).shape == x.shape

    def test_finite_at_init_for_declared_depths(self) -> None:
        for depth in self.depths:
            model = self.model(depth)
            batch = self.batch(model.config.max_positions)
            loss = model.loss(batch)
            loss.backward()
            assert torch.isfinite(loss), f"{self.label} at depth {depth}: loss {loss.item()}"
            bad = [
                n
                for n, p in model.named_parameters()
                if p.grad is not None and not torch.isfinite(p.grad).all()
            ]
            assert not bad, f"{self.label} at depth {depth}: non-finite gradients in {bad}"
            # Finite only counts where a gradient arrived: every trainable parameter needs
            # one, and the layout's own (its norms, gates...) a nonzero one. A sublayer's may
            # be zero at init (a layout that zero-initialises a residual gate).
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, f"{self.label} at depth {depth}: no gradient reaches {missing}"
            dead = [n for n, p in layout_parameters(model) if p.requires_grad and not p.grad.any()]
            assert not dead, (
                f"{self.label} at depth {depth}: the gradient of {dead} is zero everywhere"
            )

    def test_a_few_steps_reduce_the_loss(self) -> None:
        model = self.model()
        batch = self.batch(model.config.max_positions)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(self.steps):
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert all(np.isfinite(losses)), f"{self.label}: losses {losses}"
        assert losses[-1] < self.loss_ratio * losses[0], (
            f"{self.label}: {self.steps} AdamW steps took the loss from {losses[0]:.3f} to "
            f"{losses[-1]:.3f}, not below {self.loss_ratio} of the start"
        )


def layout_parameters(model: GLMModel) -> list[tuple[str, nn.Parameter]]:
    """The parameters the norm layout created: everything but the sublayers' (attention,
    MLP), the embeddings', the positional scheme's and the head's."""
    others = {
        id(p)
        for m in model.modules()
        if isinstance(m, Attention | MLP) or m is model.tok or m is model.positional
        for p in m.parameters()
    }
    if model.head is not None:
        others.update(id(p) for p in model.head.parameters())
    return [(n, p) for n, p in model.named_parameters() if id(p) not in others]
