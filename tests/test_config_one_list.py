"""Each config fact has one home (glmlab/config/schema.py, glmlab/config/ladder.py): a new
plugin kind is one hookspec, a new key one schema field; whether a key is part of a run's
identity is marked once, and the fingerprint, the run directory's name and Hydra's
exclude_keys agree; seeds and the ladder's settings are checked before any work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from glmlab.config.errors import composition_error_line
from glmlab.config.ladder import LadderConfig, RungConfig, ladder_settings
from glmlab.config.rules import ConfigError
from glmlab.config.schema import (
    GROUP_SCHEMAS,
    GLMLabConfig,
    ModelConfig,
    excluded_overrides,
    heads_divide_dim,
)
from glmlab.config.spec import RunSpec, parse_config
from glmlab.runs.identity import config_identity
from glmlab.runs.naming import register_resolvers, sweep_subdir, variant_overrides
from tests.test_ladder import GOOD

ROOT = Path(__file__).resolve().parents[1]
LADDER = GOOD  # a good ladder file


def composed(*overrides: str, hydra: bool = False) -> Any:
    register_resolvers()
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def _python(script: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter; its last stdout line is JSON."""
    import os

    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- one edit per new plugin kind or key -------------------------------------------------------


def test_a_new_plugin_kind_needs_only_its_hookspec(tmp_path: Path) -> None:
    """A kind declared with ``kind_hook(..., model_group=True)`` (as hookspecs.py declares
    every kind) is a config group, a ConfigStore schema and a RunSpec field, parsed into a
    PluginChoice, with no edit to the config package."""
    script = """
import dataclasses, json
from glmlab.plugin import hookspecs

@hookspecs.kind_hook("gate", model_group=True)
def glmlab_gates(api_version: int):
    '''Gates (a test-only kind).'''

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from glmlab.config.rules import ConfigError
from glmlab.config.schema import GROUP_SCHEMAS
from glmlab.config.spec import RunSpec, parse_config
from glmlab.runs.naming import register_resolvers

register_resolvers()
with initialize_config_module("glmlab.conf", version_base="1.3"):
    cfg = compose("config", overrides=["gate.name=plain", "+gate.width=3"])
spec = parse_config(cfg)
del cfg.gate
try:
    parse_config(cfg)
    missing = ""
except ConfigError as exc:
    missing = str(exc)
print(json.dumps({
    "field": "gate" in {f.name for f in dataclasses.fields(RunSpec)},
    "group": "gate" in GROUP_SCHEMAS,
    "stored": ConfigStore.instance().load("gate/schema.yaml").node is not None,
    "choice": [spec.gate.name, spec.gate.options],
    "missing": missing,
}))
"""
    out = _python(script, tmp_path)
    assert out["field"] and out["group"] and out["stored"]
    assert out["choice"] == ["plain", {"width": 3}]
    assert "the 'gate' config needs a 'name' key" in out["missing"]


def test_a_new_config_key_needs_only_its_schema_field(tmp_path: Path) -> None:
    """One line added to a schema dataclass (a copy of glmlab, edited) is composed, typed,
    checked by its rule, a RunSpec value and part of the fingerprint; one marked
    ``identity=False`` is in Hydra's exclude keys and not in the fingerprint."""
    copy = tmp_path / "glmlab"
    shutil.copytree(ROOT / "glmlab", copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "conf", copy / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    schema = copy / "config" / "schema.py"
    text = schema.read_text()
    anchor = "    eval_suite_seed: int = seed_rule(1234)\n"
    root_anchor = "    seed: int = seed_rule(0)\n"
    assert anchor in text and root_anchor in text
    text = text.replace(anchor, anchor + "    label_smoothing: float = rule(0.0, ge=0, lt=1)\n")
    text = text.replace(root_anchor, root_anchor + '    note: str = rule("", identity=False)\n')
    schema.write_text(text)
    script = """
import json
from hydra import compose, initialize_config_module
import glmlab
from glmlab.config.rules import ConfigError
from glmlab.config.schema import excluded_overrides
from glmlab.config.spec import parse_config
from glmlab.runs.identity import config_identity
from glmlab.runs.naming import register_resolvers
from omegaconf import OmegaConf

register_resolvers()
with initialize_config_module("glmlab.conf", version_base="1.3"):
    cfg = compose("config", overrides=["train.label_smoothing=0.1", "note=hi"])
    bad = compose("config", overrides=["train.label_smoothing=2"])
spec = parse_config(cfg)
try:
    parse_config(bad)
    refused = ""
except ConfigError as exc:
    refused = str(exc)
print(json.dumps({
    "copy": glmlab.__file__,
    "values": [spec.train.label_smoothing, spec.note],
    "refused": refused,
    "fingerprinted": sorted(config_identity(OmegaConf.to_container(cfg), {})["config"]),
    "excluded": excluded_overrides(),
}))
"""
    out = _python(script, tmp_path, {"PYTHONPATH": str(tmp_path)})
    assert out["copy"].startswith(str(copy))  # the edited copy, not the installed glmlab
    assert out["values"] == [0.1, "hi"]
    assert out["refused"] == "train.label_smoothing=2: must be a number >= 0 and < 1"
    assert "train.label_smoothing" in out["fingerprinted"] and "note" not in out["fingerprinted"]
    assert "note" in out["excluded"]


def test_run_spec_and_groups_are_the_schemas_fields() -> None:
    import dataclasses

    assert [f.name for f in dataclasses.fields(RunSpec)] == [
        f.name for f in dataclasses.fields(GLMLabConfig)
    ]
    with_options = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    assert set(GROUP_SCHEMAS) <= with_options  # each group with a schema has option files


# -- identity: one mark ----------------------------------------------------------------------


def test_hydras_exclude_keys_are_the_schemas_identity_marks() -> None:
    """conf/config.yaml lists the keys outside a run's identity for Hydra (which reads no
    schema); it must be what the schema marks. On failure, copy the list shown."""
    listed = OmegaConf.load(ROOT / "conf" / "config.yaml").hydra.job.config.override_dirname
    assert sorted(listed.exclude_keys) == excluded_overrides(), (
        f"set hydra.job.config.override_dirname.exclude_keys in conf/config.yaml to "
        f"{excluded_overrides()}"
    )


def _address_and_fingerprint(*overrides: str) -> tuple[str, str, list[str]]:
    """(run directory name, fingerprint, variant) of a single run with ``overrides``."""
    from hydra.core.hydra_config import HydraConfig

    cfg = composed(*overrides, hydra=True)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        name = sweep_subdir(str(cfg.hydra.job.override_dirname))
    finally:
        HydraConfig.instance().cfg = previous
    values = OmegaConf.to_container(cfg, resolve=False)
    values.pop("hydra")  # type: ignore[union-attr]
    fingerprint = config_identity(values, {})["fingerprint"]  # type: ignore[arg-type]
    return name, fingerprint, variant_overrides(list(overrides))


@pytest.mark.parametrize(
    "override",
    [
        "train.threads=2",
        "data.workers=2",
        "train.progress=false",
        "train.stop_after=3",
        "report.metric=[final_val_loss,cloze_acc]",
        "run.on_change=resume",
        "tracker=[tensorboard]",
        "+tracker.wandb.project=x",
    ],
)
def test_a_key_outside_identity_changes_neither_the_name_nor_the_fingerprint(override):
    assert _address_and_fingerprint(override) == _address_and_fingerprint()


@pytest.mark.parametrize("override", ["train.lr=0.01", "positional=rope", "seed=3"])
def test_a_key_of_the_identity_changes_both(override):
    name, fingerprint, _ = _address_and_fingerprint(override)
    base_name, base_fingerprint, _ = _address_and_fingerprint()
    assert name != base_name and fingerprint != base_fingerprint


# -- values checked before any work ----------------------------------------------------------


@pytest.mark.parametrize("key", ["seed", "train.eval_suite_seed"])
@pytest.mark.parametrize("value", ["-1", str(2**64)])
def test_a_seed_numpy_or_torch_cannot_take_is_one_line_naming_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        parse_config(composed(f"{key}={value}"))
    assert str(err.value) == f"{key}={value}: must be an integer from 0 to 2**63 - 1"


def test_a_negative_tuning_seed_or_verdict_seed_is_refused_before_any_run():
    from glmlab.ladder.sweep import plan_from_sweeper

    with pytest.raises(ConfigError, match=r"^ladder\.tuning_seed=-1: must be an integer from 0"):
        ladder_settings({**LADDER, "tuning_seed": -1})
    base = OmegaConf.create({"train": {"batch_size": 16, "grad_accum": 1}, "data": {"seq_len": 64}})
    with pytest.raises(ConfigError, match=r"^seed=-1: must be an integer from 0"):
        plan_from_sweeper(base, LADDER, [["seed=0"], ["seed=-1"]])


def test_heads_divide_the_width_is_one_rule_for_the_model_and_the_rungs():
    assert heads_divide_dim in ModelConfig.__glmlab_checks__  # type: ignore[attr-defined]
    assert heads_divide_dim in RungConfig.__glmlab_checks__  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as model:
        parse_config(composed("model.n_heads=3"))
    rungs = [*LADDER["rungs"][:2], {"n_layers": 2, "dim": 64, "n_heads": 3}]
    with pytest.raises(ConfigError) as rung:
        ladder_settings({**LADDER, "rungs": rungs})
    fix = ": choose a head count that divides the width"
    assert str(model.value) == "model.dim=64 must be divisible by model.n_heads=3" + fix
    assert str(rung.value) == (
        "ladder.rungs[2].dim=64 must be divisible by ladder.rungs[2].n_heads=3" + fix
    )


def test_ladder_settings_are_typed_when_composed_and_every_problem_is_named():
    cfg = composed("+experiment=span_shuffle_ablation", "+ladder=cpu", hydra=True)
    settings = ladder_settings(cfg.hydra.sweeper.ladder)
    assert isinstance(settings, LadderConfig) and settings.rungs[1].label() == "m"
    for override, line in [
        (
            "hydra.sweeper.ladder.rungs.0.dim=abc",
            "hydra.sweeper.ladder.rungs[0].dim=abc: must be an integer >= 1",
        ),
        (
            "hydra.sweeper.ladder.rungs=[{n_layers:1,dim:8,n_heads:2,depth:3}]",
            "hydra.sweeper.ladder.rungs: no such key 'depth' in RungConfig; "
            "valid keys: dim, n_heads, n_layers, name",
        ),
        (
            "hydra.sweeper.ladder.lr_grid=[a,b,c]",
            "hydra.sweeper.ladder.lr_grid[0]=a: must be a number",
        ),
    ]:
        with pytest.raises(Exception) as err:
            composed("+experiment=span_shuffle_ablation", "+ladder=cpu", override, hydra=True)
        assert composition_error_line(err.value) == line
    with pytest.raises(ConfigError) as err:
        ladder_settings({**LADDER, "fit": "best", "bootstrap": -1, "rungs": LADDER["rungs"][:1]})
    assert str(err.value) == (
        "ladder.fit=best: must be one of auto, shared_e, own_e, log; "
        "ladder.bootstrap=-1: must be an integer >= 0"
    )
    with pytest.raises(ConfigError, match="hydra.sweeper.ladder is empty: pick a ladder file"):
        ladder_settings({})


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "ladder").glob("*.yaml")), ids=str)
def test_a_ladder_file_repeats_no_default_of_the_ladder_schema(path: Path) -> None:
    from glmlab.config.schema import field_defaults

    values = OmegaConf.to_container(OmegaConf.load(path).hydra.sweeper.ladder)
    defaults = field_defaults(LadderConfig)
    repeated = {k: v for k, v in values.items() if k in defaults and defaults[k] == v}
    assert not repeated, f"{path} repeats the schema's defaults {repeated}: remove them"
