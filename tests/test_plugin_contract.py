"""The typed plugin contract: base classes (a duck-typed plugin is refused, naming the
base), model settings handed to factories, plugin-owned parameter init."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from glmlab import hookimpl
from glmlab.model.build import build_model, norm_settings, positional_settings
from glmlab.objective.glm import GLMObjective
from glmlab.plugin.base import BASES, NormLayoutBase, PositionalSchemeBase
from glmlab.plugin.guards import PluginContractError
from glmlab.plugin.helpers import positions_1d
from glmlab.plugin.registry import PluginRegistry, factory_arguments, get_registry
from glmlab.structures import SpanSet, SpecialTokens, TokenizedText
from glmlab.testing.samples import tiny_config

BUILTIN_NAMES = {
    "span_sampler": ["token", "sentence", "document", "document_suffix", "gmask"],
    "positional": ["learned_2d", "learned_1d", "rope", "rope_2d"],
    "norm_layout": ["pre_ln", "post_ln", "deepnorm"],
    "mask_builder": ["glm", "causal", "bidirectional"],
    "attention": ["eager", "sdpa", "flex", "xformers", "flash_varlen"],
}


def test_builtins_derive_from_their_kinds_base() -> None:
    registry = get_registry()
    settings = {
        "positional": positional_settings(tiny_config()),
        "norm_layout": norm_settings(tiny_config()),
    }
    for kind, names in BUILTIN_NAMES.items():
        for name in names:
            factory = registry.get(kind, name).factory  # called directly: nothing adapts it
            built = factory(**factory_arguments(factory, settings.get(kind, {}), {}, label=name))
            assert isinstance(built, BASES[kind]), f"{kind} '{name}' is a {type(built)}"
            assert type(built).__module__.startswith("glmlab.plugins."), (kind, name)


class DuckSampler:
    """Written against the protocol only (as glmlab 0.1 allowed): no base class."""

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len - 2)
        return SpanSet(((0, 1),), keep)


class DuckPositions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(40, 32)

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.table(position_ids[:, 0])

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k


class DuckAttention:
    def is_available(self, device: torch.device) -> bool:
        return True

    def prepare(self, layout: Any) -> Any:
        return get_registry().create("attention", "eager").prepare(layout)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prepared: Any) -> Any:
        return get_registry().create("attention", "eager").attend(q, k, v, prepared)


def test_a_duck_typed_plugin_is_refused_when_built_naming_its_base() -> None:
    """glmlab 0.2.0 removed the adaptation of duck-typed plugins: the registry refuses
    what a factory built unless it derives from its kind's base, naming plugin and base."""
    registry = registry_with(
        glmlab_span_samplers={"duck": DuckSampler},
        glmlab_positional_schemes={"duck": DuckPositions},
        glmlab_attention_backends={"duck": DuckAttention},
    )
    for kind, base in [
        ("span_sampler", "SpanSamplerBase"),
        ("positional", "PositionalSchemeBase"),
        ("attention", "AttentionBackendBase"),
    ]:
        with pytest.raises(PluginContractError) as refused:
            registry.create(kind, "duck")
        message = str(refused.value)
        assert f"{kind} plugin 'duck' (distribution 'glmlab-extra')" in message
        assert f"does not derive from glmlab.plugin.base.{base}: derive from it" in message


def test_the_model_and_objective_refuse_a_duck_typed_plugin_handed_to_them() -> None:
    with pytest.raises(PluginContractError, match="does not derive from .*PositionalSchemeBase"):
        build_model(
            tiny_config(), positional=DuckPositions(), norm_layout="pre_ln", attention="eager"
        )
    specials = SpecialTokens(0, 1, 2, 3, 4, 5, (), ())
    with pytest.raises(PluginContractError, match="does not derive from .*SpanSamplerBase"):
        GLMObjective([("token", DuckSampler(), 1.0)], specials)


def registry_with(**hooks: Any) -> PluginRegistry:
    """The installed plugins plus one extra plugin object implementing ``hooks``."""

    class Extra:
        pass

    for hook, factories in hooks.items():
        setattr(Extra, hook, hookimpl(lambda self, f=factories: f))
    registry = PluginRegistry()
    registry.load_entry_points()
    registry.register(Extra(), distribution="glmlab-extra")
    return registry


def test_norm_layout_factory_gets_dim_and_eps_only_when_declared() -> None:
    seen: dict[str, dict[str, Any]] = {}

    class Recording(NormLayoutBase):
        def __init__(self, *, n_layers: int, dim: int, eps: float) -> None:
            seen["new"] = {"n_layers": n_layers, "dim": dim, "eps": eps}

        def wrap(self, sublayer: nn.Module, dim: int, kind: str) -> nn.Module:
            return (
                get_registry().create("norm_layout", "pre_ln", n_layers=1).wrap(sublayer, dim, kind)
            )

    class Old(Recording):
        def __init__(self, *, n_layers: int) -> None:  # written before dim / eps existed
            seen["old"] = {"n_layers": n_layers}

    registry = registry_with(glmlab_norm_layouts={"recording": Recording, "old": Old})
    config = tiny_config(norm_eps=1e-6)
    build_model(
        config,
        positional="learned_2d",
        norm_layout="recording",
        attention="eager",
        registry=registry,
    )
    build_model(
        config, positional="learned_2d", norm_layout="old", attention="eager", registry=registry
    )
    assert seen == {
        "new": {"n_layers": config.n_layers, "dim": config.dim, "eps": 1e-6},
        "old": {"n_layers": config.n_layers},
    }


def test_builtin_norm_layouts_use_the_models_eps() -> None:
    model = build_model(
        tiny_config(norm_eps=1e-3), positional="learned_2d", norm_layout="pre_ln", attention="eager"
    )
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    assert eps == {1e-3}


@pytest.mark.parametrize("name", ["learned_2d", "learned_1d"])
def test_builtin_tables_are_initialised_by_the_scheme_with_init_std(name: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(init_std=0.5, max_positions=256, dim=64)
    model = build_model(config, norm_layout="pre_ln", positional=name, attention="eager")
    for pname, p in model.positional.named_parameters():
        assert p.std().item() == pytest.approx(0.5, rel=0.1), pname


def test_positional_factory_gets_init_std() -> None:
    seen = {}

    class Recording(PositionalSchemeBase):
        def __init__(self, *, dim: int, init_std: float) -> None:
            super().__init__()
            seen.update(dim=dim, init_std=init_std)

    registry = registry_with(glmlab_positional_schemes={"recording": Recording})
    build_model(
        tiny_config(init_std=0.07),
        norm_layout="pre_ln",
        positional="recording",
        attention="eager",
        registry=registry,
    )
    assert seen == {"dim": 32, "init_std": 0.07}


def test_positions_1d_helper() -> None:
    # Two samples packed in one row: Part A 0..3 with a span at pos1=2 (pos2 1..2), then a
    # second sample whose span is a suffix (its mask is the last Part A token, pos1=2).
    pos1 = torch.tensor([[0, 1, 2, 3, 2, 2, 0, 1, 2, 2, 2]])
    pos2 = torch.tensor([[0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 2]])
    rows = torch.stack([pos1, pos2], dim=1)
    assert positions_1d(rows).tolist() == (pos1 + pos2).tolist()
    assert positions_1d(rows, pin_part_b=True).tolist() == pos1.tolist()
    suffix = positions_1d(rows, pin_part_b=True, suffix_counts_on=True)
    assert suffix.tolist() == [[0, 1, 2, 3, 2, 2, 0, 1, 2, 3, 4]]
    assert positions_1d(rows, max_positions=3).max().item() == 3


def test_model_norm_eps_reaches_every_layer_norm_from_the_config() -> None:
    """``model.norm_eps`` is the ``eps`` the norm-layout factory is offered: set in the
    config, it reaches every LayerNorm of a trained model; a non-positive one is refused."""
    from hydra import compose, initialize_config_module

    from glmlab.assembly import build_glm_model
    from glmlab.config.rules import ConfigError
    from glmlab.config.spec import parse_config

    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=["model.norm_eps=0.001", "norm_layout=deepnorm"])
        bad = compose("config", overrides=["model.norm_eps=0"])
    model = build_glm_model(parse_config(cfg), 300, torch.device("cpu"))
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and {m.eps for m in norms} == {1e-3}
    with pytest.raises(ConfigError, match=r"model.norm_eps=0: must be a number > 0"):
        parse_config(bad)
