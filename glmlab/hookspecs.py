"""glmlab's plugin API: one hook per plugin kind.

A plugin is a module (or object) listed under the ``glmlab`` entry-point group of its
distribution::

    [project.entry-points.glmlab]
    my_sampler = "my_package.sampler_plugin"

and implementing any of the hooks below with ``@glmlab.hookimpl``. Each hook returns a
mapping from a registry name (what configs use: ``span_sampler: {name: geometric}``) to a
*factory*; the protocols in :mod:`glmlab.interfaces` say what each factory must build and
with which arguments it is called. Hooks take no arguments and are called once, when the
registry loads. Names are unique per kind across all installed distributions.

A plugin module may set ``GLMLAB_API_VERSION = <int>``; a value other than
:data:`API_VERSION` is refused at registration. The version changes only when a change
breaks existing plugins; optional additions (such as ``attention_bias``) keep it.
``docs/PLUGINS.md`` is the authoring guide; :mod:`glmlab.testing` holds the contract tests
a plugin author runs against their plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pluggy

PROJECT = "glmlab"
API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def glmlab_span_samplers() -> Mapping[str, Callable[..., object]]:
    """Span samplers: name -> ``factory(**options) -> SpanSampler``.

    A sampler picks, for one :class:`~glmlab.structures.TokenizedText`, the spans to blank
    out and the mask token kind (``MASK`` / ``sMASK`` / ``gMASK``), as a
    :class:`~glmlab.structures.SpanSet`. It must keep ``keep + 2 * len(spans) <= max_len``
    and draw all randomness from the generator it is given. The objective mixes samplers
    per sample by config weight.
    """


@hookspec
def glmlab_positional_schemes() -> Mapping[str, Callable[..., object]]:
    """Positional schemes: name -> ``factory(dim, n_heads, head_dim, max_positions, **options)``.

    The factory returns an ``nn.Module`` with ``embed(position_ids)`` (an additive
    (B, L, dim) embedding or None) and ``rotate(q, k, position_ids)`` (rotated queries and
    keys, or the inputs unchanged). ``position_ids`` is (B, 2, L): row 0 the position in
    Part A, row 1 the position inside a span (0 in Part A). Positions are below
    ``max_positions + 1`` (one extra slot for the sentinel variant). Optionally,
    ``attention_bias(position_ids)`` returns a float additive bias broadcastable to
    (B, H, L, L), or None; it needs an attention backend with ``supports_bias = True``.
    Outputs depend on ``position_ids`` only, never on the column, so packing samples into
    one row changes nothing.
    """


@hookspec
def glmlab_norm_layouts() -> Mapping[str, Callable[..., object]]:
    """Norm layouts: name -> ``factory(n_layers, **options) -> NormLayout``.

    The layout wraps each attention and MLP sublayer with its norm(s) and residual
    (``wrap``), may rescale initial weights, and supplies the final norm
    (``final_norm``). Pre-LN, Post-LN and DeepNorm are the built-ins.
    """


@hookspec
def glmlab_mask_builders() -> Mapping[str, Callable[..., object]]:
    """Attention-mask builders: name -> ``factory(**options) -> MaskBuilder``.

    ``build(segments, batch_size=, seq_len=)`` receives where each sample sits in the batch
    (row, start, length, sep) and returns an :class:`~glmlab.structures.AttentionLayout`:
    per segment a bidirectional prefix length, the rest causal. It never materialises a
    dense L x L mask; backends derive their own bias from the layout.
    """


@hookspec
def glmlab_attention_backends() -> Mapping[str, Callable[..., object]]:
    """Attention backends: name -> ``factory(**options) -> AttentionBackend``.

    ``is_available(device)`` says whether it runs here; ``prepare(layout)`` builds the
    per-batch mask once; ``attend(q, k, v, prepared, bias=None)`` returns (B, H, L, D)
    outputs that must match the ``eager`` reference backend within dtype tolerance. A
    backend that sets ``supports_bias = True`` adds a positional scheme's additive ``bias``
    to the scores (masked positions stay masked); without it the model never passes one.
    """


@hookspec
def glmlab_trackers() -> Mapping[str, Callable[..., object]]:
    """Experiment trackers: name -> ``factory(**options) -> Tracker``.

    The factory raises :class:`~glmlab.trackers.TrackerUnavailable` (naming what to install)
    when its library is missing: it is called when the run starts, before any data.
    ``start(run)`` opens a tracker run, or continues ``run.resume_id``, and returns its id,
    which glmlab keeps in the run directory; ``log(step, metrics)`` records scalars;
    ``finish(status, summary)`` closes it. See :mod:`glmlab.trackers`.
    """


KINDS: dict[str, str] = {
    "span_sampler": "glmlab_span_samplers",
    "positional": "glmlab_positional_schemes",
    "norm_layout": "glmlab_norm_layouts",
    "mask_builder": "glmlab_mask_builders",
    "attention": "glmlab_attention_backends",
    "tracker": "glmlab_trackers",
}
"""Plugin kind -> the hook that provides it."""
