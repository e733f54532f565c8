"""The plugin contract's compatibility layer (glmlab.plugin.compat): a plugin written for
hook API 1 (glmlab 0.1's import paths) still loads, each old public module serves its names
from their new home with one DeprecationWarning, and the plugin kinds are derived from the
hookspecs."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from glmlab.plugin import base, compat, helpers, hookspecs, registry
from glmlab.plugin.registry import PluginRegistry
from glmlab.runs import trackers
from tests.test_registry import SAMPLER_PLUGIN, make_distribution

# Old module -> (a name it exported, the object that name must now be).
OLD_NAMES = {
    "glmlab.hookspecs": ("hookimpl", hookspecs.hookimpl),
    "glmlab.registry": ("get_registry", registry.get_registry),
    "glmlab.plugin_base": ("SpanSamplerBase", base.SpanSamplerBase),
    "glmlab.plugin_helpers": ("place_spans", helpers.place_spans),
    "glmlab.interfaces": ("PositionalScheme", base.PositionalSchemeBase),
    "glmlab.trackers": ("Trackers", trackers.Trackers),
}


@pytest.mark.parametrize("old", sorted(compat.MOVED_MODULES))
def test_moved_module_warns_once_and_serves_the_new_objects(old: str) -> None:
    assert old in OLD_NAMES, f"add {old} to OLD_NAMES"
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*{compat.REMOVED_IN}"):
        module = importlib.import_module(old)
    name, new = OLD_NAMES[old]
    with warnings.catch_warnings():  # glmlab.interfaces' names warn on their own too
        warnings.simplefilter("ignore", DeprecationWarning)
        assert getattr(module, name) is new
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def test_old_tracker_names_resolve_to_the_contract_in_plugin_base() -> None:
    sys.modules.pop("glmlab.trackers", None)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("glmlab.trackers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert old.Tracker is base.TrackerBase
        assert old.TrackerRun is base.TrackerRun
        assert old.TrackerUnavailable is base.TrackerUnavailable


def test_a_plugin_declaring_api_1_still_loads(tmp_path, monkeypatch) -> None:
    src = "GLMLAB_API_VERSION = 1\n" + SAMPLER_PLUGIN.replace("{name}", "old_api")
    make_distribution(tmp_path, monkeypatch, "glmlab-old-api", {"old_api_plugin": src})
    reg = PluginRegistry()
    reg.load_entry_points()
    assert reg.get("span_sampler", "old_api").distribution == "glmlab-old-api"
    assert hookspecs.SUPPORTED_API_VERSIONS == {1, hookspecs.API_VERSION}
    assert hookspecs.API_VERSION == 2


def test_kinds_are_derived_from_the_hookspecs() -> None:
    specs = {
        name
        for name in dir(hookspecs)
        if name.startswith("glmlab_") and hasattr(getattr(hookspecs, name), "glmlab_spec")
    }
    assert set(hookspecs.KINDS.values()) == specs
    assert list(hookspecs.KINDS) == [
        "span_sampler",
        "positional",
        "norm_layout",
        "mask_builder",
        "attention",
        "tracker",
    ]
    assert hookspecs.MODEL_GROUP_KINDS == ["positional", "norm_layout", "mask_builder", "attention"]
    # Every kind with a base class has it in BASES; trackers are a protocol, used as built.
    assert set(base.BASES) == set(hookspecs.KINDS) - {"tracker"}
