"""The runtime guards: every check of a plugin's output against its kind's contract, in one
place. Each raises an error naming the plugin, its distribution and version and the broken
invariant, where the output is produced, instead of a failure deep inside a later layer.

- What a factory builds derives from its kind's base: :func:`glmlab.plugin.base.check_base`
  (when the registry builds a plugin, and in the model and the objective).
- The model's forward (:mod:`glmlab.model.glm`): :func:`check_embed`, :func:`check_block`,
  :func:`check_attention_bias`, :func:`check_rotate`, :func:`check_attend` (shapes and
  dtypes only, no host sync; a passing check formats no string) raise
  :class:`PluginContractError`.
- The data pipeline: :func:`check_layout` on every mask builder's layout
  (:class:`CheckedMaskBuilder`, on the CPU), :func:`check_span_set` on every span set a
  sampler returns (:class:`SamplerInvariantError`).

What a plugin must do beyond these cheap checks (which keys a query sees, statistics, ...)
is the conformance kit's job (:mod:`glmlab.testing`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from glmlab.plugin.base import MaskBuilderBase
from glmlab.plugin.errors import PluginContractError, PluginError
from glmlab.plugin.registry import PluginEntry, PluginRegistry, get_registry
from glmlab.structures import AttentionLayout, Segment, SpanSet

__all__ = [
    "CheckedMaskBuilder",
    "PluginContractError",
    "SamplerInvariantError",
    "broken",
    "check_attend",
    "check_attention_bias",
    "check_block",
    "check_embed",
    "check_layout",
    "check_module",
    "check_rotate",
    "check_span_set",
    "checked_mask_builder",
    "plugin_label",
    "sampler_label",
]


def plugin_label(entry: PluginEntry) -> str:
    """How guard messages name a registered plugin: kind, name, distribution and version."""
    return (
        f"{entry.kind} plugin '{entry.name}' (distribution '{entry.distribution}' {entry.version})"
    )


def broken(plugin: str, invariant: str) -> PluginContractError:
    """The error for ``plugin`` (a :func:`plugin_label`) breaking ``invariant``.

    Callers test first and build the message only on failure: the checks sit on the
    forward path, so a passing check must cost no string formatting.
    """
    return PluginContractError(f"{plugin} broke an invariant: {invariant}")


def type_and_shape(value: object) -> str:
    """``value``'s dtype and shape (or type) for an error message."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def broadcastable(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` with the same number of dimensions."""
    return len(shape) == len(target) and all(
        s in (1, t) for s, t in zip(shape, target, strict=True)
    )


def check_module(value: object, what: str, plugin: str) -> None:
    """A plugin part the model trains (a positional scheme, a wrapped sublayer, a norm) is
    an ``nn.Module``: anything else would be stored as a plain attribute and its parameters
    would silently never train. ``what`` says where it came from (``"wrap() returned"``)."""
    if not isinstance(value, torch.nn.Module):
        raise broken(plugin, f"{what} {type_and_shape(value)}, not an nn.Module")


def check_embed(pos: object, x: torch.Tensor, plugin: str) -> None:
    """A positional scheme's ``embed()`` output: None or a float tensor shaped like ``x``."""
    if not (isinstance(pos, torch.Tensor) and pos.shape == x.shape and pos.is_floating_point()):
        raise broken(
            plugin,
            f"embed() returned {type_and_shape(pos)}; expected None or a float tensor "
            f"(B, L, dim) = {tuple(x.shape)}",
        )


def check_block(y: torch.Tensor, x: torch.Tensor, plugin: str) -> None:
    """A block wrapped by a norm layout keeps its input's shape."""
    if y.shape != x.shape:
        raise broken(
            plugin,
            f"a wrapped block returned {type_and_shape(y)} for an input of shape {tuple(x.shape)}",
        )


def check_attention_bias(
    bias: object, target: tuple[int, ...], plugin: str, backend: str, supports_bias: bool
) -> None:
    """A positional scheme's ``attention_bias()``: a float tensor broadcastable to
    ``target`` (B, H, L, L), for an attention backend (``backend``) that accepts one."""
    if not (
        isinstance(bias, torch.Tensor)
        and bias.is_floating_point()
        and broadcastable(tuple(bias.shape), target)
    ):
        raise broken(
            plugin,
            f"attention_bias() returned {type_and_shape(bias)}; expected None or a float tensor "
            f"broadcastable to (B, H, L, L) = {target}",
        )
    if not supports_bias:
        raise PluginContractError(
            f"{plugin} adds an attention bias, but {backend} does not accept one (it does not "
            "set supports_bias = True). Pick an attention backend that supports a bias "
            "(eager, sdpa) or another positional scheme."
        )


def check_rotate(
    rq: torch.Tensor, rk: torch.Tensor, q: torch.Tensor, k: torch.Tensor, plugin: str
) -> None:
    """A positional scheme's ``rotate()`` keeps the shapes of q and k."""
    if rq.shape != q.shape or rk.shape != k.shape:
        raise broken(
            plugin,
            f"rotate() returned q {type_and_shape(rq)} and k {type_and_shape(rk)} for q and k of "
            f"shape {tuple(q.shape)}; rotation must keep the shapes",
        )


def check_attend(out: object, q: torch.Tensor, plugin: str) -> None:
    """An attention backend's ``attend()`` returns a tensor shaped like the queries."""
    if not (isinstance(out, torch.Tensor) and out.shape == q.shape):
        raise broken(
            plugin,
            f"attend() returned {type_and_shape(out)} for queries of shape {tuple(q.shape)}; "
            "expected (B, H, L, D), the queries' shape",
        )


class SamplerInvariantError(ValueError):
    """A span sampler returned spans that break the sampler contract."""


def sampler_label(sampler: str) -> str:
    """``sampler`` with its distribution and version, when the registry knows the name."""
    try:
        entry = get_registry().get("span_sampler", sampler)
    except PluginError:
        return f"span sampler '{sampler}'"
    return f"span sampler '{sampler}' (distribution '{entry.distribution}' {entry.version})"


def check_span_set(spans: SpanSet, text_len: int, max_len: int, sampler: str) -> None:
    """Raise :class:`SamplerInvariantError` naming ``sampler`` (registry name) and its
    distribution if ``spans`` is invalid."""
    if not isinstance(spans, SpanSet):
        raise SamplerInvariantError(
            f"{sampler_label(sampler)} broke an invariant: sample() returned "
            f"{type(spans).__name__}, not a SpanSet"
        )
    problem = None
    if not 0 < spans.keep <= text_len:
        problem = f"keep={spans.keep} outside (0, {text_len}]"
    elif spans.glm_length() > max_len:
        problem = f"keep + 2 * n_spans = {spans.glm_length()} exceeds max_len={max_len}"
    elif spans.mask_kind not in ("MASK", "sMASK", "gMASK"):
        problem = f"unknown mask_kind {spans.mask_kind!r}"
    elif not spans.eop and len(spans.spans) != 1:
        problem = f"eop=False needs exactly one span, got {len(spans.spans)}"
    else:
        prev_end = 0
        for s, e in spans.spans:
            if not (prev_end <= s < e <= spans.keep):
                problem = (
                    f"span ({s}, {e}) is empty, unsorted, overlapping or beyond keep={spans.keep}"
                )
                break
            prev_end = e
    if problem:
        raise SamplerInvariantError(f"{sampler_label(sampler)} broke an invariant: {problem}")


def check_layout(
    layout: AttentionLayout, segments: list[Segment], batch_size: int, seq_len: int, plugin: str
) -> None:
    """Raise :class:`PluginContractError` naming ``plugin`` unless
    ``layout`` describes ``segments`` the way :class:`AttentionLayout` says.

    Checks the sizes, the (B, L) int32 ``segment_ids`` / ``prefix_end``, one row-major entry
    per segment with its row, start and length and a prefix in ``[0, length]``, and that the
    per-column fields agree with those entries. Which keys a query sees is the conformance
    kit's job (:mod:`glmlab.testing`), not a run's.
    """
    if not isinstance(layout, AttentionLayout):
        raise broken(plugin, f"build() returned {type_and_shape(layout)}, not an AttentionLayout")
    if (layout.batch_size, layout.seq_len) != (batch_size, seq_len):
        raise broken(
            plugin,
            f"layout size (batch_size, seq_len) = {(layout.batch_size, layout.seq_len)} for a "
            f"batch of {(batch_size, seq_len)}",
        )
    for field in ("segment_ids", "prefix_end"):
        t = getattr(layout, field)
        if not (
            isinstance(t, torch.Tensor)
            and t.shape == (batch_size, seq_len)
            and t.dtype == torch.int32
        ):
            raise broken(
                plugin,
                f"layout.{field} is {type_and_shape(t)}; expected an int32 tensor (B, L) = "
                f"{(batch_size, seq_len)}",
            )
    n = len(segments)
    try:
        entries = np.array(layout.segments, dtype=np.int64).reshape(-1, 4)
    except (TypeError, ValueError):  # ragged or non-numeric entries
        entries = np.zeros((0, 0), dtype=np.int64)
    given = np.array([(s.row, s.start, s.length) for s in segments], dtype=np.int64).reshape(-1, 3)
    given = given[np.lexsort((given[:, 1], given[:, 0]))]  # row-major
    if entries.shape != (n, 4) or not np.array_equal(entries[:, :3], given):
        raise broken(
            plugin,
            f"layout.segments (first entries {layout.segments[:3]}) does not list the {n} "
            "segments row-major as (row, start, length, prefix), one entry each",
        )
    rows, starts, lengths, prefix = entries.T
    if ((prefix < 0) | (prefix > lengths)).any():
        raise broken(plugin, "layout.segments has a prefix outside [0, length]")
    # The per-column fields these entries imply, run-length decoded (segments are sorted).
    first = np.cumsum(lengths) - lengths
    columns = np.repeat(rows * seq_len + starts - first, lengths) + np.arange(lengths.sum())
    expected = np.full(batch_size * seq_len, -1, dtype=np.int64)
    expected[columns] = np.repeat(np.arange(n), lengths)
    if not np.array_equal(layout.segment_ids.cpu().numpy().reshape(-1), expected):
        raise broken(plugin, "layout.segment_ids does not match layout.segments (-1 on padding)")
    prefix_end = layout.prefix_end.cpu().numpy().reshape(-1)[columns]
    if not np.array_equal(prefix_end, np.repeat(starts + prefix, lengths)):
        raise broken(plugin, "layout.prefix_end is not start + prefix on every segment column")


class CheckedMaskBuilder:
    """A mask builder whose every layout goes through :func:`check_layout`.

    The check runs where the layout is built: in the data pipeline, on the CPU, off the
    model's forward path.
    """

    def __init__(self, builder: MaskBuilderBase, plugin: str) -> None:
        self.builder = builder
        self.plugin = plugin

    def build(self, segments: list[Segment], *, batch_size: int, seq_len: int) -> AttentionLayout:
        layout = self.builder.build(segments, batch_size=batch_size, seq_len=seq_len)
        check_layout(layout, segments, batch_size, seq_len, self.plugin)
        return layout


def checked_mask_builder(
    name: str, options: dict[str, Any] | None = None, registry: PluginRegistry | None = None
) -> CheckedMaskBuilder:
    """The mask builder ``name`` built with ``options``, its layouts checked at run time."""
    registry = registry or get_registry()
    builder = registry.create("mask_builder", name, **(options or {}))
    return CheckedMaskBuilder(builder, plugin_label(registry.get("mask_builder", name)))
