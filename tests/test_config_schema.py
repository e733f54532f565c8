"""The config schema (glmlab/config/schema.py) is the one source of defaults: every conf/ file
extends its group's schema and carries only what it changes, the effective configs of the
default run and of every experiment are pinned, and types are checked at composition."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from glmlab.config.errors import schema_field
from glmlab.config.rules import ConfigError
from glmlab.config.schema import (
    GROUP_SCHEMAS,
    PLUGIN_GROUPS,
    SCHEMA,
    GLMLabConfig,
    ModelConfig,
    TrainConfig,
    field_defaults,
)
from glmlab.config.spec import PluginChoice, parse_config
from glmlab.io import flatten
from glmlab.runs.naming import register_resolvers

CONF = Path(__file__).parents[1] / "conf"
EFFECTIVE = Path(__file__).parent / "fixtures" / "config" / "effective.yaml"


def composed(*overrides: str) -> dict[str, Any]:
    register_resolvers()
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def pinned() -> dict[str, Any]:
    return yaml.safe_load(EFFECTIVE.read_text())


@pytest.mark.parametrize("case", sorted(pinned()))
def test_effective_config_is_pinned(case):
    """`python -m glmlab [+experiment=X] [scale=gpu] --cfg job` gives the values the
    README's runs and experiments were measured with; a default moved between a schema and
    a conf/ file must not change them (the bare command's scale is appended: +scale=cpu)."""
    want = pinned()[case]
    assert flatten(composed(*want["overrides"])) == flatten(want["config"])


def test_default_run_is_the_schema_plus_what_its_options_change():
    """The default composition differs from the schema's defaults only where an option
    it picks says so (model=tiny, train=cpu, data=stdlib_docs, objective=glm_token)."""
    schema = flatten(OmegaConf.to_container(OmegaConf.structured(GLMLabConfig)))
    default = flatten(composed())
    changed = {k for k in default if schema.get(k, "<unset>") != default[k]}
    from_options = set()
    for group, option in (
        ("train", "cpu"),
        ("data", "stdlib_docs"),
        ("objective", "glm_token"),
        ("model", "tiny"),
        *zip(PLUGIN_GROUPS, ("learned_2d", "pre_ln", "glm", "auto"), strict=True),
    ):
        own = _option_values(CONF / group / f"{option}.yaml")
        from_options |= {f"{group}.{k}" for k in flatten(own)}
    assert changed <= from_options, changed - from_options
    assert default["train.threads"] == 1 and default["train.max_steps"] == 800


def _option_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text()) or {}
    values.pop("defaults", None)
    return values


OPTION_FILES = [
    p for g in GROUP_SCHEMAS for p in sorted((CONF / g).glob("*.yaml"))
]  # conf/<group>/<option>.yaml of the groups with a schema


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_option_file_extends_its_schema_and_repeats_no_default(path):
    text = yaml.safe_load(path.read_text()) or {}
    assert text.get("defaults") == [SCHEMA, "_self_"], f"{path}: must extend its schema first"
    defaults = field_defaults(GROUP_SCHEMAS[path.parent.name])
    repeated = {k: v for k, v in _option_values(path).items() if k in defaults and defaults[k] == v}
    assert not repeated, f"{path} repeats the schema's defaults {repeated}: remove them"


GLOBAL_FILES = sorted([*(CONF / "scale").glob("*.yaml"), *(CONF / "experiment").glob("*.yaml")])


@pytest.mark.parametrize("path", GLOBAL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_global_file_sets_no_value_to_the_default_it_already_has(path):
    """A scale or experiment file may set a key back to the schema's default only where
    another option changed it (scale=gpu's train.threads: null undoes train=cpu's 1)."""
    values = _option_values(path)
    values.pop("hydra", None)
    base = flatten(composed())
    repeated = {}
    for key, value in flatten(values).items():
        found = schema_field(key)
        if found is None or found[0] is None:
            continue
        group, _, name = key.rpartition(".")
        cls = GLMLabConfig if not group else GROUP_SCHEMAS.get(group) or _root_schema(group)
        default = field_defaults(cls).get(name, "<none>")
        if value == default and base.get(key) == default:
            repeated[key] = value
    assert not repeated, f"{path} sets {repeated}, the default already: remove them"


def _root_schema(group: str) -> type:
    """The schema of a root-level group without a conf/ folder (report, run, distributed)."""
    return typing.get_type_hints(GLMLabConfig)[group]


def test_every_group_has_a_schema_in_the_config_store():
    from hydra.core.config_store import ConfigStore

    import glmlab.conf  # noqa: F401 - registers the schemas

    store = ConfigStore.instance()
    assert store.load(f"{SCHEMA}.yaml").node is not None
    for group in GROUP_SCHEMAS:
        assert store.load(f"{group}/{SCHEMA}.yaml").node is not None, group


def test_plugin_group_is_a_typed_choice_that_unpacks():
    spec = parse_config(OmegaConf.create(composed("positional=rope")))
    name, options = spec.positional
    assert isinstance(spec.positional, PluginChoice) and name == "rope"
    assert options == {"base": 10000.0, "pin_part_b": True, "suffix_counts_on": True}
    assert spec.distributed.parallel == "ddp" and spec.run.on_change is None
    assert spec.report.metric == "final_val_loss" and spec.tracker == {}


def test_plugin_group_takes_any_option_at_composition():
    """Options are the factory's (the registry checks them), not the schema's; a new one
    on the command line needs ``+``, as before the schemas."""
    from hydra.errors import HydraException

    cfg = composed("positional.name=alibi", "+positional.pin_part_b=true")
    assert cfg["positional"] == {"name": "alibi", "pin_part_b": True}
    with pytest.raises(HydraException, match=r"use \+positional\.pin_part_b=true"):
        composed("positional.name=alibi", "positional.pin_part_b=true")  # a typo needs no +
    with pytest.raises(ConfigError, match=r"positional\.name=3: must be a registered plugin"):
        parse_config(OmegaConf.create(composed("positional.name=3")))


def test_run_level_keys_are_checked_with_the_rest():
    cfg = composed(
        "distributed.parallel=zero",
        "run.on_change=ignore",
        "report.metric=[]",
        "train.batch_size=0",
    )
    with pytest.raises(ConfigError) as err:
        parse_config(OmegaConf.create(cfg))
    message = str(err.value)
    assert "distributed.parallel=zero: must be one of ddp, fsdp" in message
    assert "run.on_change=ignore: must be one of refuse, restart, resume" in message
    assert "train.batch_size=0: must be an integer >= 1" in message
    assert "\n" not in message


def test_report_metric_and_tracker_are_checked():
    with pytest.raises(ConfigError, match=r"report\.metric=\[\]: must be a metric name"):
        parse_config(OmegaConf.create(composed("report.metric=[]")))
    cfg = composed("tracker=[tensorboard]")
    assert parse_config(OmegaConf.create(cfg)).tracker == {
        "tensorboard": {"log_dir": "tensorboard", "flush_secs": 30}
    }
    cfg["tracker"] = {"tensorboard": 3}
    with pytest.raises(ConfigError, match=r"tracker=.*: must be a list of tracker names"):
        parse_config(OmegaConf.create(cfg))


def test_missing_plugin_name_and_objective_kind_are_named():
    cfg = composed()
    cfg["positional"] = {"base": 1.0}
    del cfg["objective"]["kind"]
    with pytest.raises(ConfigError) as err:
        parse_config(OmegaConf.create(cfg))
    assert "the 'positional' config needs a 'name' key" in str(err.value)
    assert "objective.kind is missing: must be one of glm, mlm, clm" in str(err.value)


def test_glm_objective_without_samplers_is_refused_before_data():
    with pytest.raises(ConfigError, match="a glm objective needs at least one span sampler"):
        parse_config(OmegaConf.create(composed("objective.samplers.token.weight=0")))


def test_config_read_back_from_a_run_directory_is_checked_without_the_schema():
    """inspect and infill parse a run's config.yaml, an untyped node: same rules."""
    cfg = OmegaConf.create(composed())
    cfg.train.max_steps = "lots"
    with pytest.raises(ConfigError, match=r"train\.max_steps=lots: must be an integer >= 1"):
        parse_config(cfg)


if __name__ == "__main__":  # regenerate the pinned configs (then review the diff)
    # The bare command appends its scale (glmlab/config/scale.py): +scale=cpu without CUDA.
    cases: dict[str, list[str]] = {"default": ["+scale=cpu"], "default_gpu": ["+scale=gpu"]}
    for experiment in sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")):
        cases[experiment] = [f"+experiment={experiment}"]
        cases[f"{experiment}_gpu"] = [f"+experiment={experiment}", "scale=gpu"]
    header = "".join(ln for ln in EFFECTIVE.read_text().splitlines(True) if ln.startswith("#"))
    body = {name: {"overrides": ov, "config": composed(*ov)} for name, ov in cases.items()}
    EFFECTIVE.write_text(header + yaml.safe_dump(body, sort_keys=False))


def test_plugin_option_file_without_the_schema_still_composes_and_is_typed():
    """A third-party option file written before the schemas (no ``defaults``) merges
    into the root schema: it composes, and a wrong type in it is still refused."""
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException

    store = ConfigStore.instance()
    try:
        store.store(group="objective", name="legacy", node={"kind": "glm", "samplers": {"x": {}}})
        store.store(group="positional", name="legacy", node={"name": "alibi", "pin_part_b": False})
        cfg = composed("objective=legacy", "positional=legacy")
        assert (
            cfg["objective"]["samplers"] == {"x": {}}
            and cfg["objective"]["task_sampling"] == "batch"
        )
        assert cfg["positional"] == {"name": "alibi", "pin_part_b": False}
        store.store(
            group="objective", name="legacy_bad", node={"kind": "glm", "sentinels": "maybe"}
        )
        with pytest.raises(HydraException):
            composed("objective=legacy_bad")
    finally:  # the store is the process's: leave no test option in it
        for group in ("objective", "positional"):
            for name in ("legacy.yaml", "legacy_bad.yaml"):
                store.repo[group].pop(name, None)


def test_code_takes_its_defaults_from_the_schema():
    """The builders have no defaults of their own for what the config sets; the model's
    and the objectives' keyword defaults are the schema's."""
    import inspect

    from glmlab.config.schema import ObjectiveConfig
    from glmlab.data.pipeline import prepare_data
    from glmlab.data.tokenizer import GLMTokenizer, load_or_train
    from glmlab.model.build import build_model
    from glmlab.model.glm import GLMConfig
    from glmlab.objective.baselines import MLMObjective
    from glmlab.objective.glm import GLMObjective

    required = {
        build_model: ("positional", "norm_layout", "attention"),
        prepare_data: ("vocab_size", "n_sentinels", "chunk_len", "packing", "min_tokens"),
        GLMTokenizer.train: ("vocab_size", "n_sentinels"),
        load_or_train: ("vocab_size", "n_sentinels"),
    }
    for fn, names in required.items():
        params = inspect.signature(fn).parameters
        assert all(params[n].default is inspect.Parameter.empty for n in names), fn.__name__
    model = field_defaults(ModelConfig)
    # model_config passes every model.* setting on: each one is a GLMConfig field.
    assert set(model) <= {f.name for f in dataclasses.fields(GLMConfig)}
    for f in dataclasses.fields(GLMConfig):
        if f.default is not dataclasses.MISSING:
            assert f.default == model[f.name], f.name
    objective = field_defaults(ObjectiveConfig)
    glm = inspect.signature(GLMObjective).parameters
    for name in ("shuffle_spans", "sentinels", "task_sampling"):
        assert glm[name].default == objective[name], name
    assert inspect.signature(MLMObjective).parameters["ratio"].default == objective["mlm_ratio"]


def test_a_key_the_schema_added_with_a_null_default_changes_no_identity():
    """Run directories made before the schemas lack data.tokenizer_file (now null) and
    tracker (now {}): a rerun finds the same config, not a change to refuse."""
    from glmlab.runs.identity import config_identity, identity_changes

    old = config_identity({"data": {"seq_len": 128}}, {})
    new = config_identity({"data": {"seq_len": 128, "tokenizer_file": None}, "tracker": {}}, {})
    assert identity_changes(old, new) == []
    given = config_identity({"data": {"seq_len": 128, "tokenizer_file": "t.json"}}, {})
    assert identity_changes(old, given) == ["data.tokenizer_file: '<unset>' -> 't.json'"]


def test_conf_composes_as_a_plain_directory_with_nothing_of_glmlab_imported() -> None:
    """Hydra imports the ``hydra_plugins`` namespace before composing, and glmlab's module
    there stores the schemas: ``conf/`` composes as a directory (``initialize_config_dir``,
    ``--config-dir``) in a fresh interpreter, with the schema's types still checked."""
    import subprocess
    import sys

    conf = Path(__file__).resolve().parent.parent / "conf"
    script = f"""
import sys
from hydra import compose, initialize_config_dir
with initialize_config_dir(config_dir={str(conf)!r}, version_base=None):
    assert "glmlab.conf" not in sys.modules
    cfg = compose("config", overrides=["+experiment=span_shuffle_ablation"])
    print(cfg.train.max_steps, cfg.model.dim)
    try:
        compose("config", overrides=["train.max_steps=lots"])
    except Exception as e:
        print(type(e).__name__)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.split()
    train = field_defaults(TrainConfig)
    assert out[0] == "800" != str(train["max_steps"])  # the experiment's value, composed
    assert out[1] == str(field_defaults(ModelConfig)["dim"])  # the schema's default
    assert out[2] == "ConfigCompositionException"  # a string in an int field is refused
