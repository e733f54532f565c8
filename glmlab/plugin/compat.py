"""Deprecated names of the plugin kinds' types, kept for plugins written against them.

:mod:`glmlab.plugin.base` is the one source of what each plugin kind's factory builds: a
base class per kind with every optional member explicit and defaulted. The protocol names
that this module used to define are aliases of those bases (a duck-typed plugin need not
derive from them: glmlab adapts it when it is built, :func:`glmlab.plugin.base.adapt`).
"""

from __future__ import annotations

from glmlab.plugin.base import (
    AttentionBackendBase,
    MaskBuilderBase,
    NormLayoutBase,
    PositionalSchemeBase,
    SpanSamplerBase,
)

SpanSampler = SpanSamplerBase
PositionalScheme = PositionalSchemeBase
NormLayout = NormLayoutBase
MaskBuilder = MaskBuilderBase
AttentionBackend = AttentionBackendBase

__all__ = ["AttentionBackend", "MaskBuilder", "NormLayout", "PositionalScheme", "SpanSampler"]
