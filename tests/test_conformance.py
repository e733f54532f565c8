"""The conformance kit (glmlab.testing) against every built-in plugin; the kit catching
broken plugins; and the runtime guards that name a plugin breaking its contract."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from glmlab import hookimpl
from glmlab.model.build import build_model
from glmlab.model.glm import GLMModel
from glmlab.objective.glm import GLMObjective
from glmlab.plugin.base import (
    AttentionBackendBase,
    MaskBuilderBase,
    NormLayoutBase,
    PositionalSchemeBase,
    SpanSamplerBase,
    TrackerRun,
)
from glmlab.plugin.guards import PluginContractError, SamplerInvariantError, checked_mask_builder
from glmlab.plugin.registry import PluginRegistry, get_registry
from glmlab.plugins.trackers import installed
from glmlab.structures import AttentionLayout, Segment, SpanSet, SpecialTokens, TokenizedText
from glmlab.testing import (
    AttentionBackendContract,
    MaskBuilderContract,
    NormLayoutContract,
    PluginContract,
    PositionalSchemeContract,
    SpanSamplerContract,
    TrackerContract,
)
from glmlab.testing.samples import random_segments, tiny_config
from tests import tracker_readers

approx = pytest.approx

# -- every built-in passes its contract ------------------------------------------------


class TestTokenSampler(SpanSamplerContract):
    name = "token"
    declared = {
        # Lengths drawn until >= int(0.15 n), never trimmed: the ratio overshoots 15%.
        "mask_ratio": approx(0.155, abs=0.004),
        "mean_span_length": approx(3.157, abs=0.12),  # Poisson(3) on 1..39
        "max_span_length": 39,
        "min_gap": 1,
        "mask_kind": "MASK",
    }


class TestSentenceSampler(SpanSamplerContract):
    name = "sentence"
    declared = {"mask_ratio": approx(0.175, abs=0.02), "mask_kind": "sMASK"}


class TestDocumentSampler(SpanSamplerContract):
    name = "document"
    declared = {"mask_ratio": approx(0.75, abs=0.03), "spans_per_sample": 1, "mask_kind": "gMASK"}


class TestDocumentSuffixSampler(SpanSamplerContract):
    name = "document_suffix"
    declared = {"mask_ratio": approx(0.75, abs=0.03), "spans_per_sample": 1, "mask_kind": "gMASK"}


class TestGMaskSampler(SpanSamplerContract):
    name = "gmask"
    declared = {"mask_ratio": approx(0.5, abs=0.04), "spans_per_sample": 1, "mask_kind": "gMASK"}


class TestLearned2D(PositionalSchemeContract):
    name = "learned_2d"


class TestLearned1D(PositionalSchemeContract):
    name = "learned_1d"


class TestLearned1DPinned(PositionalSchemeContract):
    name = "learned_1d"
    options = {"pin_part_b": True}


class TestRope(PositionalSchemeContract):
    name = "rope"


class TestRope2D(PositionalSchemeContract):
    name = "rope_2d"


class TestPreLN(NormLayoutContract):
    name = "pre_ln"


class TestPostLN(NormLayoutContract):
    name = "post_ln"


class TestDeepNorm(NormLayoutContract):
    name = "deepnorm"


class TestDeepNormGLM130B(NormLayoutContract):
    name = "deepnorm"
    options = {"constants": "glm130b"}


class TestGLMMask(MaskBuilderContract):
    name = "glm"

    def attends(self, segment: Segment, query: int, key: int) -> bool:
        return key < segment.sep or key <= query


class TestCausalMask(MaskBuilderContract):
    name = "causal"

    def attends(self, segment: Segment, query: int, key: int) -> bool:
        return key <= query


class TestBidirectionalMask(MaskBuilderContract):
    name = "bidirectional"

    def attends(self, segment: Segment, query: int, key: int) -> bool:
        return True


class TestEager(AttentionBackendContract):
    name = "eager"


class TestSDPA(AttentionBackendContract):
    name = "sdpa"


class TestFlex(AttentionBackendContract):  # CUDA only: skipped, saying so, elsewhere
    name = "flex"


class TestXFormers(AttentionBackendContract):  # CUDA only: skipped, saying so, elsewhere
    name = "xformers"


class TestFlashVarlen(AttentionBackendContract):  # CUDA only: skipped, saying so, elsewhere
    name = "flash_varlen"


# Trackers: what each logged is read back through its own library (tests/tracker_readers.py).
def _needs(library: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not installed(library),
        reason=f"{library} is not installed: pip install 'glmlab[{library}]'",
    )


@_needs("tensorboard")
class TestTensorBoardTracker(TrackerContract):
    name = "tensorboard"
    options = {"flush_secs": 1}

    def read_back(self, run: TrackerRun, run_id: str) -> dict[str, list[tuple[int, float]]]:
        return tracker_readers.tensorboard_scalars(run.run_dir / run_id)


@pytest.mark.slow  # ~7 s a test: MLflow creates its SQLite store
@_needs("mlflow")
class TestMLflowTracker(TrackerContract):
    name = "mlflow"

    @pytest.fixture(autouse=True)
    def _default_store(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the sweep's SQLite file

    def read_back(self, run: TrackerRun, run_id: str) -> dict[str, list[tuple[int, float]]]:
        uri = f"sqlite:///{(run.sweep_dir / 'mlflow.db').resolve()}"
        return tracker_readers.mlflow_run(uri, run_id)[1]


@pytest.mark.slow  # ~9 s: W&B starts its service process
@_needs("wandb")
class TestWandbTracker(TrackerContract):
    name = "wandb"

    @pytest.fixture(autouse=True)
    def _offline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WANDB_MODE", "offline")  # no account, no network
        monkeypatch.setenv("WANDB_SILENT", "true")

    def read_back(self, run: TrackerRun, run_id: str) -> dict[str, list[tuple[int, float]]]:
        return tracker_readers.wandb_offline(run.run_dir, run_id)[1]


def test_every_builtin_has_a_conformance_class() -> None:
    covered = {
        (cls.kind, cls.name)
        for name, cls in globals().items()
        if name.startswith("Test") and isinstance(cls, type) and issubclass(cls, PluginContract)
    }
    builtins = {(e.kind, e.name) for e in get_registry().entries() if e.distribution == "glmlab"}
    missing = sorted(builtins - covered)
    assert not missing, f"add a conformance class to tests/test_conformance.py for {missing}"


# -- the kit catches broken plugins ----------------------------------------------------


class GlobalRandomSampler(SpanSamplerBase):
    """Draws from Python's global generator instead of the one it is given."""

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        keep = min(len(text), max_len - 2)
        start = random.randrange(keep) if keep > 1 else 0
        return SpanSet(((start, start + 1),) if keep > 1 else (), max(keep, 1))


class ColumnPositions(PositionalSchemeBase):
    """Embeds the column index instead of ``position_ids``: packing changes its output."""

    def __init__(self, *, dim: int, n_heads: int, head_dim: int, max_positions: int) -> None:
        super().__init__()
        self.table = nn.Embedding(max_positions, dim)

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        columns = torch.arange(position_ids.shape[-1], device=position_ids.device)
        return self.table(columns).expand(position_ids.shape[0], -1, -1)

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k


def test_kit_catches_a_sampler_using_global_randomness() -> None:
    class TestBroken(SpanSamplerContract):
        factory = GlobalRandomSampler

    with pytest.raises(AssertionError, match="rng passed to sample"):
        TestBroken().test_deterministic_under_a_seed()


def test_kit_catches_a_sampler_missing_its_declared_statistics() -> None:
    class TestBroken(SpanSamplerContract):
        name = "token"
        declared = {"mask_ratio": 0.3, "mask_kind": "MASK"}

    with pytest.raises(AssertionError, match=r"declared mask_ratio .* 0\.3, measured 0\.15"):
        TestBroken().test_declared_statistics()


def test_kit_catches_a_scheme_that_reads_the_column() -> None:
    class TestBroken(PositionalSchemeContract):
        factory = ColumnPositions

    with pytest.raises(AssertionError, match="changes when packed"):
        TestBroken().test_packed_rows_match_one_sample_per_row()


def test_kit_catches_a_mask_builder_against_its_definition() -> None:
    class TestBroken(MaskBuilderContract):
        name = "causal"  # claims GLM's definition

        def attends(self, segment: Segment, query: int, key: int) -> bool:
            return key < segment.sep or key <= query

    with pytest.raises(AssertionError, match="disagrees with its declared definition"):
        TestBroken().test_matches_the_declared_definition()


# -- runtime guards name the plugin, its distribution and the invariant ---------------


class WideEmbedding(ColumnPositions):
    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*position_ids.shape[::2], self.table.embedding_dim + 1)


class Truncating(ColumnPositions):
    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q[..., :-1], k


class Biased(ColumnPositions):
    def embed(self, position_ids: torch.Tensor) -> None:
        return None

    def attention_bias(self, position_ids: torch.Tensor) -> torch.Tensor:
        length = position_ids.shape[-1]
        return torch.zeros(1, 1, length, length)


class BadBias(Biased):
    def attention_bias(self, position_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(3, 3, dtype=torch.long)


class NoBiasAttention(AttentionBackendBase):
    """sdpa without ``supports_bias``: a backend written before the bias existed."""

    def __init__(self) -> None:
        self.inner = get_registry().create("attention", "sdpa")

    def is_available(self, device: torch.device) -> bool:
        return True

    def prepare(self, layout: AttentionLayout) -> torch.Tensor:
        return self.inner.prepare(layout)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prepared: torch.Tensor
    ) -> torch.Tensor:
        return self.inner.attend(q, k, v, prepared)


class HeadMergingAttention(NoBiasAttention):
    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prepared: torch.Tensor
    ) -> torch.Tensor:
        return super().attend(q, k, v, prepared).sum(dim=1)


class NotAModuleLayout(NormLayoutBase):
    def __init__(self, *, n_layers: int) -> None:
        pass

    def wrap(self, sublayer: nn.Module, dim: int, kind: str) -> object:
        return lambda x, **kwargs: x + sublayer(x, **kwargs)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.Identity()


class Int64Layouts(MaskBuilderBase):
    def __init__(self) -> None:
        self.inner = get_registry().create("mask_builder", "glm")

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        layout = self.inner.build(segments, batch_size=batch_size, seq_len=seq_len)
        layout.segment_ids = layout.segment_ids.long()
        return layout


class BrokenPlugins:
    """One plugin object registering a broken plugin of each model-side kind."""

    @hookimpl
    def glmlab_positional_schemes(self) -> dict[str, type]:
        return {
            "wide": WideEmbedding,
            "truncating": Truncating,
            "biased": Biased,
            "bad_bias": BadBias,
        }

    @hookimpl
    def glmlab_attention_backends(self) -> dict[str, type]:
        return {"no_bias": NoBiasAttention, "head_merging": HeadMergingAttention}

    @hookimpl
    def glmlab_norm_layouts(self) -> dict[str, type]:
        return {"not_a_module": NotAModuleLayout}

    @hookimpl
    def glmlab_mask_builders(self) -> dict[str, type]:
        return {"int64": Int64Layouts}


@pytest.fixture(scope="module")
def broken_registry() -> PluginRegistry:
    registry = PluginRegistry()
    registry.load_entry_points()
    registry.register(BrokenPlugins(), distribution="glmlab-broken", version="6.6")
    return registry


def forward(registry: PluginRegistry, **plugins: str) -> torch.Tensor:
    plugins = {"positional": "learned_2d", "norm_layout": "pre_ln", "attention": "sdpa", **plugins}
    model = build_model(tiny_config(), registry=registry, **plugins)
    rng = np.random.default_rng(0)
    segments = random_segments(rng, 2, 8)
    layout = registry.create("mask_builder", "glm").build(segments, batch_size=2, seq_len=8)
    ids = torch.zeros(2, 8, dtype=torch.long)
    return model(ids, torch.zeros(2, 2, 8, dtype=torch.long), layout)


@pytest.mark.parametrize(
    ("plugins", "who", "invariant"),
    [
        ({"positional": "wide"}, "positional plugin 'wide'", r"embed\(\) returned .* \(2, 8, 33\)"),
        (
            {"positional": "truncating"},
            "positional plugin 'truncating'",
            r"rotate\(\) .* keep the shapes",
        ),
        (
            {"positional": "bad_bias"},
            "positional plugin 'bad_bias'",
            r"attention_bias\(\) returned .*int64",
        ),
        (
            {"attention": "head_merging"},
            "attention plugin 'head_merging'",
            r"attend\(\) returned .* \(2, 8, 8\)",
        ),
        (
            {"norm_layout": "not_a_module"},
            "norm_layout plugin 'not_a_module'",
            r"wrap\(\) returned a function",
        ),
    ],
)
def test_guard_names_plugin_distribution_and_invariant(
    broken_registry, plugins, who, invariant
) -> None:
    with pytest.raises(
        PluginContractError,
        match=rf"{who} \(distribution 'glmlab-broken' 6\.6\) broke an invariant: {invariant}",
    ):
        forward(broken_registry, **plugins)


def test_bias_needs_a_backend_that_takes_it(broken_registry) -> None:
    with pytest.raises(PluginContractError) as info:
        build_model(
            tiny_config(),
            norm_layout="pre_ln",
            positional="biased",
            attention="no_bias",
            registry=broken_registry,
        )
    message = str(info.value)
    assert (
        "positional plugin 'biased' (distribution 'glmlab-broken' 6.6) adds an attention bias"
        in message
    )
    assert (
        "attention plugin 'no_bias' (distribution 'glmlab-broken' 6.6) does not accept one"
        in message
    )
    # Without a bias the same backend is fine: the model never passes one.
    assert forward(broken_registry, attention="no_bias").shape == (2, 8, 32)


def test_mask_builder_layouts_are_checked_where_built(broken_registry) -> None:
    builder = checked_mask_builder("int64", registry=broken_registry)
    with pytest.raises(
        PluginContractError,
        match=r"mask_builder plugin 'int64' \(distribution 'glmlab-broken' 6\.6\) broke an invariant: layout\.segment_ids is a torch\.int64",
    ):
        builder.build([Segment(0, 0, 3, 1)], batch_size=1, seq_len=4)


def test_sampler_guard_names_the_distribution() -> None:
    class Overlapping(SpanSamplerBase):
        def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
            return SpanSet(((0, 2), (1, 3)), keep=4)

    specials = SpecialTokens(0, 1, 2, 3, 4, 5, (), ())
    objective = GLMObjective([("token", Overlapping(), 1.0)], specials)
    text = TokenizedText(np.arange(6, 12), np.array([6]))
    with pytest.raises(
        SamplerInvariantError,
        match=r"span sampler 'token' \(distribution 'glmlab' .*\) broke an invariant: span \(1, 3\)",
    ):
        objective.build(text, max_len=16, rng=np.random.default_rng(0))


# -- the kit's model-side checks can fail ------------------------------------------------


class FixedTable(PositionalSchemeBase):
    """A scheme with a fixed (frozen) sinusoid-like table and a trainable scale: a model that
    re-initialised a scheme's tables would overwrite it."""

    def __init__(self, *, dim: int, max_positions: int, **_: int) -> None:
        super().__init__()
        table = torch.arange((max_positions + 1) * dim, dtype=torch.float32).reshape(-1, dim)
        self.table = nn.Embedding.from_pretrained(torch.sin(table / 7.0), freeze=True)
        self.scale = nn.Parameter(torch.ones(()))

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.scale * self.table(position_ids[:, 0])

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k


class DetachedTable(PositionalSchemeBase):
    """Its trainable table never gets a gradient (embed detaches it)."""

    def __init__(self, *, dim: int, max_positions: int, **_: Any) -> None:
        super().__init__()
        self.table = nn.Embedding(max_positions + 1, dim)

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.table.weight.detach()[position_ids[:, 0]]


class NotAModuleScheme:
    def embed(self, position_ids: torch.Tensor) -> None:
        return None

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k


class TestFixedTable(PositionalSchemeContract):
    """A fixed frozen table passes the whole kit: the model leaves it alone."""

    factory = FixedTable


def test_model_construction_keeps_a_frozen_table() -> None:
    config = tiny_config()
    scheme = FixedTable(dim=config.dim, max_positions=config.max_positions)
    table = scheme.table.weight.detach().clone()
    model = build_model(config, positional=scheme, norm_layout="pre_ln", attention="eager")
    torch.testing.assert_close(model.positional.table.weight, table, rtol=0, atol=0)


def test_kit_catches_a_model_that_overwrites_a_fixed_table(monkeypatch) -> None:
    class TestFixed(PositionalSchemeContract):
        factory = FixedTable

    def reinit_everything(self: GLMModel, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for m in self.positional.modules():  # what the model did before plugins owned init
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    init = GLMModel.__init__
    monkeypatch.setattr(GLMModel, "__init__", reinit_everything)
    with pytest.raises(AssertionError, match=r"overwrote \['table.weight'\]"):
        TestFixed().test_model_construction_keeps_the_schemes_own_init()


def test_kit_catches_a_scheme_whose_table_gets_no_gradient() -> None:
    class TestBroken(PositionalSchemeContract):
        factory = DetachedTable

    with pytest.raises(AssertionError, match=r"no gradient reaches \['table.weight'\]"):
        TestBroken().test_every_mask_builder()


def test_kit_catches_a_scheme_that_is_not_a_module() -> None:
    class TestBroken(PositionalSchemeContract):
        factory = NotAModuleScheme

    with pytest.raises(PluginContractError, match="does not derive from .*PositionalSchemeBase"):
        TestBroken().test_builds_a_module()


# -- the kit's reference and gradient checks can fail -------------------------------------


class UnscaledAttention(NoBiasAttention):
    """Forgets the 1/sqrt(D) scale: what comparing a backend with ``eager`` could not catch
    in ``eager`` itself."""

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prepared: torch.Tensor
    ) -> torch.Tensor:
        return super().attend(q * q.shape[-1] ** 0.5, k, v, prepared)


class DetachedKeysAttention(NoBiasAttention):
    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prepared: torch.Tensor
    ) -> torch.Tensor:
        return super().attend(q, k.detach(), v, prepared)


class DeadGate(nn.Module):
    """``x + relu(gate) * f(LN(x))`` with the gate at -1: no gradient ever moves it."""

    def __init__(self, sublayer: nn.Module, dim: int) -> None:
        super().__init__()
        self.norm, self.sublayer = nn.LayerNorm(dim), sublayer
        self.gate = nn.Parameter(torch.tensor(-1.0))

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return x + torch.relu(self.gate) * self.sublayer(self.norm(x), **kwargs)


class DeadGateLayout(NormLayoutBase):
    def __init__(self, *, n_layers: int) -> None:
        pass

    def wrap(self, sublayer: nn.Module, dim: int, kind: str) -> nn.Module:
        return DeadGate(sublayer, dim)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.LayerNorm(dim)


def test_kit_catches_a_backend_that_differs_from_the_definition() -> None:
    class TestBroken(AttentionBackendContract):
        factory = UnscaledAttention

    with pytest.raises(AssertionError, match="vs the reference"):
        TestBroken().test_matches_the_reference(torch.float32)


def test_kit_catches_a_backend_that_cuts_a_gradient() -> None:
    class TestBroken(AttentionBackendContract):
        factory = DetachedKeysAttention

    with pytest.raises(AssertionError, match="no gradient reaches k"):
        TestBroken().test_matches_the_reference(torch.float32)


def test_kit_catches_a_norm_layout_whose_parameters_get_zero_gradients() -> None:
    class TestBroken(NormLayoutContract):
        factory = DeadGateLayout

    with pytest.raises(AssertionError, match=r"the gradient of \['blocks.0.attn.gate'"):
        TestBroken().test_finite_at_init_for_declared_depths()


class VagueErrors(Int64Layouts):
    """The glm builder, with errors that do not say which segment is wrong."""

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        try:
            return self.inner.build(segments, batch_size=batch_size, seq_len=seq_len)
        except ValueError:
            raise ValueError("invalid segments") from None


def test_kit_catches_a_mask_builder_error_that_names_no_segment() -> None:
    class TestBroken(MaskBuilderContract):
        factory = VagueErrors

        def attends(self, segment: Segment, query: int, key: int) -> bool:
            return key < segment.sep or key <= query

    with pytest.raises(AssertionError, match="does not name it"):
        TestBroken().test_rejects_invalid_segments(Segment(2, 0, 3, 1))


class ListedTables(PositionalSchemeBase):
    """Keeps its two tables in a plain list: the model never sees (or trains) them."""

    def __init__(self, *, dim: int, max_positions: int, **_: Any) -> None:
        super().__init__()
        self.tables = [nn.Embedding(max_positions + 1, dim) for _ in range(2)]

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.tables[0](position_ids[:, 0]) + self.tables[1](position_ids[:, 1])


def test_kit_catches_a_scheme_with_unregistered_tables() -> None:
    class TestBroken(PositionalSchemeContract):
        factory = ListedTables

    with pytest.raises(AssertionError, match=r"plain containers \['ListedTables.tables'\]"):
        TestBroken().test_builds_a_module()
    # Without the check it would pass the gradient test: no parameter, none without a gradient.
    TestBroken().test_every_mask_builder()
