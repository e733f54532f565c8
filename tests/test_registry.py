"""Plugin discovery through entry points, lookups and the registry's error messages."""

import sys
import textwrap

import pytest

from glmlab.registry import (
    DuplicatePluginError,
    IncompatiblePluginError,
    PluginLoadError,
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

class Everything:
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


def test_duplicate_names_name_both_distributions(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        monkeypatch,
        "glmlab-clash",
        {"clash_plugin": SAMPLER_PLUGIN.replace("{name}", "token")},
    )
    reg = PluginRegistry()
    with pytest.raises(DuplicatePluginError) as info:
        reg.load_entry_points()
    assert "span_sampler 'token'" in str(info.value)
    assert "'glmlab'" in str(info.value) and "'glmlab-clash'" in str(info.value)


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


def test_bad_options_name_the_plugin():
    with pytest.raises(Exception, match="span_sampler plugin 'token'.*rejected its options"):
        get_registry().create("span_sampler", "token", no_such_option=1)
