"""glmlab's conformance kit: the contract tests a plugin author runs against a plugin.

Subclass the contract of your plugin's kind in a pytest module, name the subclass
``Test...`` and say which plugin to test; pytest then runs every contract test on it::

    import pytest
    from glmlab.testing import SpanSamplerContract

    class TestGeometric(SpanSamplerContract):
        name = "geometric"                      # registry name, found via your entry point
        options = {"p": 0.2}                    # factory options, as in your config group
        declared = {"mask_ratio": pytest.approx(0.15, abs=0.01), "max_span_length": 10}

One contract per kind: :class:`SpanSamplerContract`, :class:`PositionalSchemeContract`,
:class:`NormLayoutContract`, :class:`MaskBuilderContract` (implement ``attends``),
:class:`AttentionBackendContract` and :class:`TrackerContract` (implement ``read_back``).
:data:`TINY_OVERRIDES` and :func:`run_glmlab` run ``python -m glmlab`` end to end in
seconds. The kit needs pytest. ``docs/PLUGINS.md``
describes every contract.
"""

from glmlab.testing.attention import AttentionBackendContract
from glmlab.testing.base import PluginContract
from glmlab.testing.mask_builders import MaskBuilderContract
from glmlab.testing.norm_layouts import NormLayoutContract
from glmlab.testing.positional import PositionalSchemeContract
from glmlab.testing.runs import TINY_OVERRIDES, run_glmlab
from glmlab.testing.samplers import SpanSamplerContract
from glmlab.testing.trackers import TrackerContract

__all__ = [
    "TINY_OVERRIDES",
    "AttentionBackendContract",
    "MaskBuilderContract",
    "NormLayoutContract",
    "PluginContract",
    "PositionalSchemeContract",
    "SpanSamplerContract",
    "TrackerContract",
    "run_glmlab",
]
