"""The scale: ``scale=cpu|gpu`` works with or without an experiment, and ``scale=auto`` (the
default without one) follows the device the run trains on (glmlab/config/scale.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

from glmlab.cli.inspect import compose_config
from glmlab.config.scale import ScaleChoice, device_scale, resolve_scale


def test_auto_follows_the_device():
    assert device_scale(["train.device=cuda:1"]) == ScaleChoice("gpu", False, "train.device=cuda:1")
    assert device_scale(["train.device=cpu"]).name == "cpu"
    assert device_scale(["train.device=mps"]).name == "cpu"
    here = device_scale([])
    assert here.name == ("gpu" if torch.cuda.is_available() else "cpu") and not here.given
    assert "CUDA" in here.why


@pytest.mark.parametrize(
    ("overrides", "out", "name", "given"),
    [
        # No experiment: the root config does not list the group, so it is appended.
        (
            ["seed=1", "train.device=cpu"],
            ["seed=1", "train.device=cpu", "+scale=cpu"],
            "cpu",
            False,
        ),
        (["scale=gpu"], ["+scale=gpu"], "gpu", True),
        (["+scale=cpu"], ["+scale=cpu"], "cpu", True),
        (["scale=auto", "train.device=cuda"], ["+scale=gpu", "train.device=cuda"], "gpu", False),
        # An experiment lists /scale: cpu itself: a plain override, auto resolved.
        (["+experiment=x", "scale=gpu"], ["+experiment=x", "scale=gpu"], "gpu", True),
        (["+experiment=x", "scale=auto", "train.device=cpu"], None, "cpu", False),
    ],
)
def test_resolve_scale(overrides, out, name, given):
    resolved, choice = resolve_scale(overrides)
    if out is not None:
        assert resolved == out
    else:
        assert resolved == ["+experiment=x", "scale=cpu", "train.device=cpu"]
    assert choice is not None and (choice.name, choice.given) == (name, given)
    assert f"scale {name}" in choice.line()


def test_an_experiments_own_scale_and_hydras_choices_are_left_alone():
    assert resolve_scale(["+experiment=x"]) == (["+experiment=x"], None)  # its /scale: cpu
    assert resolve_scale(["+experiment=x", "scale=cpu,gpu"])[0] == [
        "+experiment=x",
        "scale=cpu,gpu",
    ]
    assert resolve_scale(["scale=tpu"]) == (["+scale=tpu"], None)  # Hydra lists the options


def test_inspect_composes_what_the_bare_command_runs():
    cfg = compose_config(["train.device=cpu"])
    assert cfg.positional.name == "rope" and cfg.data.vocab_size == 1024  # conf/scale/cpu.yaml
    gpu = compose_config(["scale=gpu"])
    assert gpu.model.dim == 768 and gpu.data.vocab_size == 32768


@pytest.mark.slow  # an interpreter that imports torch and Hydra
def test_scale_is_a_plain_override_of_a_single_run():
    """As the README writes it: no Hydra "use +scale=cpu" error."""
    for scale, dim in (("cpu", 64), ("gpu", 768)):
        proc = subprocess.run(
            [sys.executable, "-m", "glmlab", f"scale={scale}", "--cfg", "job"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert yaml.safe_load(proc.stdout)["model"]["dim"] == dim


def test_a_plugin_chosen_by_name_is_built_with_its_own_defaults():
    """scale=cpu picks positional=rope, whose file spells out rope's options: a scheme named
    on the command line takes the root config's option instead, so no rope option reaches
    it (as on the root config, where positional.name=alibi keeps the defaults)."""
    resolved, _ = resolve_scale(["positional.name=learned_1d", "train.device=cpu"])
    assert resolved[0] == "positional=learned_2d" and "+scale=cpu" in resolved
    assert dict(compose_config(resolved).positional) == {"name": "learned_1d"}
    chosen = ["positional=rope", "positional.name=rope", "train.device=cpu"]
    assert resolve_scale(chosen)[0] == [*chosen, "+scale=cpu"]  # an option chosen: kept
    spanned = compose_config(["+experiment=span_shuffle_ablation", "positional.name=learned_1d"])
    assert dict(spanned.positional) == {"name": "learned_1d"}
