"""glmlab's plugin API: one hook per plugin kind.

A plugin is a module (or object) listed under the ``glmlab`` entry-point group of its
distribution::

    [project.entry-points.glmlab]
    my_sampler = "my_package.sampler_plugin"

and implementing any of the hooks below with ``@glmlab.hookimpl``. Each hook returns a
mapping from a registry name (what configs select: ``positional=alibi``, or a span
sampler under ``objective.samplers``, ``{geometric: {weight: 1.0, p: 0.2}}``) to a
*factory*; :mod:`glmlab.plugin.base` has the base class each factory's product derives from
(and documents). No hook is ``firstresult``: the registry calls each plugin's
implementation once, when it loads, and indexes every name it returns. A name claimed by
two distributions fails only the runs that use it.

How hooks grow: every hook takes keyword context arguments, and pluggy lets an
implementation declare only those it reads (none, today's usual case). Context added later
is a new keyword argument here, announced with ``versionadded``; implementations that do
not declare it never see it, so adding one does not change :data:`API_VERSION`. Likewise a
factory receives only the model settings its signature declares
(:func:`glmlab.plugin.registry.factory_arguments`).

A plugin module may set ``GLMLAB_API_VERSION = <int>``; a value outside
:data:`SUPPORTED_API_VERSIONS` is refused at registration. The version changes when a change
breaks existing plugins, or when their import paths move (version 2: the contract in
:mod:`glmlab.plugin`, every plugin deriving from its kind's base); optional additions (such
as ``attention_bias``) keep it.

Each hook below is declared with :func:`kind_hook`, which names the plugin kind it provides
and how a config selects it: :data:`KINDS` and :data:`MODEL_GROUP_KINDS` are derived from
these declarations, never listed again elsewhere.
``docs/PLUGINS.md`` is the authoring guide; :mod:`glmlab.testing` holds the contract tests
a plugin author runs against their plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # torch stays unimported until a plugin is built
    from glmlab.plugin.base import (
        AttentionBackendBase,
        MaskBuilderBase,
        NormLayoutBase,
        PositionalSchemeBase,
        SpanSamplerBase,
        TrackerBase,
    )

PROJECT = "glmlab"
API_VERSION = 2
SUPPORTED_API_VERSIONS: frozenset[int] = frozenset({API_VERSION})
"""Versions a plugin may declare: the current one only (glmlab 0.2.0 removed version 1's
import paths; docs/PLUGINS.md has the migration table)."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

SpanSamplerFactory = Callable[..., "SpanSamplerBase"]
PositionalFactory = Callable[..., "PositionalSchemeBase"]
NormLayoutFactory = Callable[..., "NormLayoutBase"]
MaskBuilderFactory = Callable[..., "MaskBuilderBase"]
AttentionFactory = Callable[..., "AttentionBackendBase"]
TrackerFactory = Callable[..., "TrackerBase"]

KINDS: dict[str, str] = {}
"""Plugin kind -> the hook that provides it (filled by :func:`kind_hook`, in hook order)."""
MODEL_GROUP_KINDS: list[str] = []
"""Kinds a config selects with one config group of the kind's name (``positional=rope``):
``{name: ..., <options>}`` under that key. Span samplers are chosen under
``objective.samplers``, trackers as a list (``tracker=[...]``)."""


def kind_hook(kind: str, *, model_group: bool = False) -> Callable[[Callable], Callable]:
    """Declare a hookspec providing plugin ``kind``; ``model_group``: a config selects one
    plugin of this kind with the config group named ``kind``."""

    def declare(spec: Callable) -> Callable:
        KINDS[kind] = spec.__name__
        if model_group:
            MODEL_GROUP_KINDS.append(kind)
        return hookspec(spec)

    return declare


@kind_hook("span_sampler")
def glmlab_span_samplers(api_version: int) -> Mapping[str, SpanSamplerFactory] | None:
    """Span samplers: name -> ``factory(**options) -> SpanSamplerBase``.

    Called once per implementing plugin when the registry loads; return the mapping (or
    None for nothing). A sampler picks, for one :class:`~glmlab.structures.TokenizedText`,
    the spans to blank out and the mask kind, as a :class:`~glmlab.structures.SpanSet`,
    keeping ``keep + 2 * len(spans) <= max_len``, all randomness from the generator given.
    Optional: ``mask_kind``, ``for_batch``, ``sample_row`` (see
    :class:`~glmlab.plugin.base.SpanSamplerBase`).

    ``api_version``: the host's :data:`API_VERSION` (declare it only if you read it).

    .. versionadded:: API 1
    .. versionchanged:: API 1 (glmlab 0.1) ``api_version`` context argument; optional.
    """


@kind_hook("positional", model_group=True)
def glmlab_positional_schemes(api_version: int) -> Mapping[str, PositionalFactory] | None:
    """Positional schemes: name -> ``factory(**settings, **options) -> PositionalSchemeBase``.

    Called once per implementing plugin when the registry loads. The factory is offered
    the settings ``dim``, ``n_heads``, ``head_dim``, ``max_positions`` and ``init_std`` and
    receives those it declares. The scheme is an ``nn.Module`` with ``embed(position_ids)``
    (additive (B, L, dim) or None), ``rotate(q, k, position_ids)`` and
    ``attention_bias(position_ids)`` (float, broadcastable to (B, H, L, L), or None; needs a
    backend with ``supports_bias``). ``position_ids`` is (B, 2, L); outputs depend on it
    only, never on the column. The scheme initialises its own parameters; the model never
    touches them.

    .. versionadded:: API 1
    .. versionchanged:: API 1 (glmlab 0.1) ``init_std`` offered; plugin-owned init.
    """


@kind_hook("norm_layout", model_group=True)
def glmlab_norm_layouts(api_version: int) -> Mapping[str, NormLayoutFactory] | None:
    """Norm layouts: name -> ``factory(**settings, **options) -> NormLayoutBase``.

    Called once per implementing plugin when the registry loads. The factory is offered
    ``n_layers``, ``dim`` and ``eps`` (the model's LayerNorm epsilon) and receives those it
    declares. The layout wraps each sublayer with its norm(s) and residual (``wrap``) and
    supplies ``final_norm``; optionally ``init_projections`` (re-initialise the blocks'
    weight matrices) and ``input_norm`` (a norm on the first block's input).

    .. versionadded:: API 1
    .. versionchanged:: API 1 (glmlab 0.1) ``dim`` and ``eps`` offered.
    """


@kind_hook("mask_builder", model_group=True)
def glmlab_mask_builders(api_version: int) -> Mapping[str, MaskBuilderFactory] | None:
    """Attention-mask builders: name -> ``factory(**options) -> MaskBuilderBase``.

    Called once per implementing plugin when the registry loads.
    ``build(segments, batch_size=, seq_len=)`` receives where each sample sits in the batch
    (row, start, length, sep) and returns an :class:`~glmlab.structures.AttentionLayout`:
    per segment a bidirectional prefix length, the rest causal; never a dense L x L mask.

    .. versionadded:: API 1
    """


@kind_hook("attention", model_group=True)
def glmlab_attention_backends(api_version: int) -> Mapping[str, AttentionFactory] | None:
    """Attention backends: name -> ``factory(**options) -> AttentionBackendBase``.

    Called once per implementing plugin when the registry loads. ``is_available(device)``,
    ``prepare(layout)`` once per forward, ``attend(q, k, v, prepared, bias=None)`` ->
    (B, H, L, D) matching the ``eager`` reference within dtype tolerance. Optional:
    ``supports_bias`` / ``supports_dropout`` (then ``attend`` takes ``bias`` /
    ``dropout_p``), ``prepare_host(layout)`` (CPU work in the data collator).

    .. versionadded:: API 1
    """


@kind_hook("tracker")
def glmlab_trackers(api_version: int) -> Mapping[str, TrackerFactory] | None:
    """Experiment trackers: name -> ``factory(**options) -> TrackerBase``.

    Called once per implementing plugin when the registry loads; the factories are called
    when a run starts, before any data, and raise
    :class:`~glmlab.plugin.base.TrackerUnavailable` (naming what to install) when their
    library is missing. ``start(run)`` opens a tracker run, or continues ``run.resume_id``,
    and returns its id, which glmlab keeps in the run directory; ``log(step, metrics)``
    records scalars; ``finish(status, summary)`` closes it. See :mod:`glmlab.runs.trackers`.

    ``api_version``: the host's :data:`API_VERSION` (declare it only if you read it).

    .. versionadded:: API 1 (glmlab 0.1)
    """


HOOK_CONTEXT: dict[str, object] = {"api_version": API_VERSION}
"""The keyword context every hook is called with; an implementation receives the
arguments it declares."""
