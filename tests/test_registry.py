"""Plugin discovery through entry points, lookups and the registry's error messages."""

import json
import sys
import textwrap

import pytest

from glmlab import API_VERSION, hookimpl
from glmlab.plugin.base import SpanSamplerBase
from glmlab.plugin.hookspecs import KINDS
from glmlab.plugin.registry import (
    DuplicatePluginError,
    IncompatiblePluginError,
    PluginFactoryError,
    PluginLoadError,
    PluginOptionsError,
    PluginRegistry,
    UnknownPluginError,
    get_registry,
)

BUILTINS = {
    "span_sampler": {"token", "sentence", "document", "gmask"},
    "positional": {"learned_2d", "learned_1d", "rope", "rope_2d"},
    "norm_layout": {"pre_ln", "post_ln", "deepnorm"},
    "mask_builder": {"glm", "causal", "bidirectional"},
    "attention": {"eager", "sdpa"},
}


def test_builtins_come_from_glmlab_entry_points():
    reg = get_registry()
    for kind, names in BUILTINS.items():
        assert names <= set(reg.names(kind))
        for name in names:
            entry = reg.get(kind, name)
            assert entry.distribution == "glmlab"
            assert entry.module.startswith("glmlab.plugins.")


def test_unknown_name_lists_available_with_distribution():
    with pytest.raises(UnknownPluginError) as info:
        get_registry().get("positional", "no_such_scheme")
    msg = str(info.value)
    assert "no positional plugin named 'no_such_scheme'" in msg
    assert "'rope' (glmlab)" in msg and "'learned_2d' (glmlab)" in msg


def test_unknown_kind():
    with pytest.raises(UnknownPluginError, match="kinds are"):
        get_registry().get("tokenizer", "bpe")


def make_distribution(tmp_path, monkeypatch, dist: str, modules: dict[str, str]) -> None:
    """Install a fake distribution (dist-info + modules) on sys.path."""
    info = tmp_path / f"{dist.replace('-', '_')}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    eps = "".join(f"{m} = {m}\n" for m in modules)
    (info / "entry_points.txt").write_text(f"[glmlab]\n{eps}")
    for mod, src in modules.items():
        (tmp_path / f"{mod}.py").write_text(textwrap.dedent(src))
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in modules:
        sys.modules.pop(mod, None)


SAMPLER_PLUGIN = """
from glmlab import hookimpl
from glmlab.plugin.base import SpanSamplerBase

class Everything(SpanSamplerBase):
    def __init__(self, **opts):
        self.opts = opts
    def sample(self, text, *, max_len, rng):
        raise NotImplementedError

@hookimpl
def glmlab_span_samplers():
    return {"{name}": Everything}
"""


def test_third_party_plugin_is_discovered(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        monkeypatch,
        "glmlab-extra",
        {"extra_plugin": SAMPLER_PLUGIN.replace("{name}", "everything")},
    )
    reg = PluginRegistry()
    reg.load_entry_points()
    entry = reg.get("span_sampler", "everything")
    assert (entry.distribution, entry.version, entry.module) == (
        "glmlab-extra",
        "1.2",
        "extra_plugin",
    )
    assert reg.create("span_sampler", "everything", k=3).opts == {"k": 3}
    assert reg.get("span_sampler", "token").distribution == "glmlab"


def test_a_name_clash_fails_only_lookups_of_that_name(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        monkeypatch,
        "glmlab-clash",
        {"clash_plugin": SAMPLER_PLUGIN.replace("{name}", "token")},
    )
    reg = PluginRegistry()
    reg.load_entry_points()  # the clash is recorded, not raised
    for use in (
        lambda: reg.get("span_sampler", "token"),
        lambda: reg.create("span_sampler", "token"),
    ):
        with pytest.raises(DuplicatePluginError) as info:
            use()
        assert "span_sampler 'token'" in str(info.value)
        assert "'glmlab'" in str(info.value) and "'glmlab-clash'" in str(info.value)
    # Every other name keeps working, so built-in-only runs that avoid 'token' still run.
    assert reg.create("span_sampler", "sentence") is not None
    assert reg.get("positional", "rope").distribution == "glmlab"
    assert "token" not in reg.names("span_sampler")
    # The listing shows both claimants.
    claimants = [e.distribution for e in reg.entries("span_sampler") if e.name == "token"]
    assert sorted(claimants) == ["glmlab", "glmlab-clash"]
    assert [e.distribution for e in reg.clashes()[("span_sampler", "token")]] == [
        "glmlab",
        "glmlab-clash",
    ]


def test_import_failure_names_entry_point_and_distribution(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        monkeypatch,
        "glmlab-broken",
        {"broken_plugin": "import does_not_exist_anywhere\n"},
    )
    with pytest.raises(PluginLoadError) as info:
        PluginRegistry().load_entry_points()
    msg = str(info.value)
    assert "broken_plugin" in msg and "glmlab-broken" in msg and "does_not_exist_anywhere" in msg


def test_incompatible_api_version_is_refused(tmp_path, monkeypatch):
    src = "GLMLAB_API_VERSION = 99\n" + SAMPLER_PLUGIN.replace("{name}", "future")
    make_distribution(tmp_path, monkeypatch, "glmlab-future", {"future_plugin": src})
    with pytest.raises(IncompatiblePluginError, match="GLMLAB_API_VERSION = 99"):
        PluginRegistry().load_entry_points()


def test_unknown_option_is_refused_before_the_call_naming_what_is_accepted():
    with pytest.raises(PluginOptionsError) as info:
        get_registry().create("span_sampler", "token", no_such_option=1)
    msg = str(info.value)
    assert "span_sampler plugin 'token'" in msg and "distribution 'glmlab'" in msg
    assert "unknown option(s) ['no_such_option']" in msg
    assert "'mask_ratio'" in msg  # the options the factory accepts


def make_registry(**factories) -> PluginRegistry:
    """A registry holding only ``factories`` as span samplers (distribution 'glmlab-test')."""

    class Plugin:
        @hookimpl
        def glmlab_span_samplers(self):
            return factories

    reg = PluginRegistry()
    reg.register(Plugin(), distribution="glmlab-test")
    return reg


def test_missing_required_option_is_refused_before_the_call():
    calls = []

    def factory(*, ratio: float, scale: float = 1.0):
        calls.append(ratio)

    with pytest.raises(
        PluginOptionsError, match=r"missing required option\(s\) \['ratio'\]"
    ) as info:
        make_registry(needy=factory).create("span_sampler", "needy", scale=2.0)
    assert "glmlab-test" in str(info.value) and "['ratio', 'scale']" in str(info.value)
    assert calls == []


def test_an_exception_inside_the_factory_is_the_plugins_failure_with_traceback():
    def factory(*, ratio: float = 0.1):
        raise TypeError("internal bug: unsupported operand")

    with pytest.raises(PluginFactoryError) as info:
        make_registry(buggy=factory).create("span_sampler", "buggy", ratio=0.2)
    msg = str(info.value)
    assert "span_sampler plugin 'buggy'" in msg and "failed while building" in msg
    assert "internal bug" in msg and "rejected its options" not in msg and "conf/" not in msg
    assert isinstance(info.value.__cause__, TypeError)  # the plugin's own traceback, chained


class Built(SpanSamplerBase):
    """What the test factories build: a span sampler that is never asked for spans."""


def test_settings_reach_only_factories_that_declare_them():
    seen = {}

    def old(*, dim: int, ratio: float = 0.1):
        seen["old"] = {"dim": dim, "ratio": ratio}
        return Built()

    def new(*, dim: int, init_std: float, ratio: float = 0.1):
        seen["new"] = {"dim": dim, "init_std": init_std}
        return Built()

    def anything(**kwargs):
        seen["anything"] = kwargs
        return Built()

    reg = make_registry(old=old, new=new, anything=anything)
    settings = {"dim": 8, "init_std": 0.02}
    for name in ("old", "new", "anything"):
        reg.create("span_sampler", name, settings=settings)
    assert seen == {
        "old": {"dim": 8, "ratio": 0.1},
        "new": {"dim": 8, "init_std": 0.02},
        "anything": {"dim": 8, "init_std": 0.02},
    }
    reg.create("span_sampler", "old", settings=settings, dim=4)  # an option wins
    assert seen["old"] == {"dim": 4, "ratio": 0.1}


def test_a_hook_implementation_gets_the_context_it_declares():
    seen = []

    class Plugin:
        @hookimpl
        def glmlab_span_samplers(self, api_version):
            seen.append(api_version)
            return {"versioned": Built}

    reg = PluginRegistry()
    reg.register(Plugin(), distribution="glmlab-test")
    assert seen == [API_VERSION]
    assert isinstance(reg.create("span_sampler", "versioned"), Built)


def test_every_hookspec_is_typed_and_documented():
    import inspect as pyinspect

    from glmlab.plugin import hookspecs

    for hook_name in KINDS.values():
        spec = getattr(hookspecs, hook_name)
        sig = pyinspect.signature(spec)
        assert sig.return_annotation is not pyinspect.Signature.empty, hook_name
        assert all(p.annotation is not p.empty for p in sig.parameters.values()), hook_name
        assert set(sig.parameters) <= set(hookspecs.HOOK_CONTEXT), hook_name
        assert "versionadded" in (spec.__doc__ or ""), hook_name


def test_glmlab_plugins_shows_a_clash(tmp_path, monkeypatch, capsys):
    from glmlab.cli import main as cli

    make_distribution(
        tmp_path,
        monkeypatch,
        "glmlab-clash",
        {"clash_plugin": SAMPLER_PLUGIN.replace("{name}", "token")},
    )
    reg = PluginRegistry()
    reg.load_entry_points()
    monkeypatch.setattr(cli, "get_registry", lambda: reg)
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "CLASH: span_sampler 'token' is registered by 'glmlab', 'glmlab-clash'" in out
    assert cli.main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    token = [e for e in listed if e["kind"] == "span_sampler" and e["name"] == "token"]
    assert sorted(e["distribution"] for e in token) == ["glmlab", "glmlab-clash"]
    assert all(e["clash"] == "yes" for e in token)


def test_kinds_are_derived_from_the_hookspecs() -> None:
    from glmlab.plugin import base, hookspecs

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
