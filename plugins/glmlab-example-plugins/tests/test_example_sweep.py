"""End to end: the plugins are listed with this distribution, and a tiny sweep selects them
by config name alone."""

import json
import subprocess
import sys

import pytest
import yaml

from glmlab.testing import TINY_OVERRIDES, run_glmlab


@pytest.mark.slow  # `python -m glmlab.plugins` in a subprocess
def test_listed_by_glmlab_plugins() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {(r["kind"], r["name"]): r for r in json.loads(proc.stdout)}
    for key, module in [
        (("span_sampler", "geometric"), "glmlab_example_plugins.geometric"),
        (("positional", "alibi"), "glmlab_example_plugins.alibi"),
    ]:
        assert rows[key]["distribution"] == "glmlab-example-plugins"
        assert rows[key]["module"] == module


@pytest.mark.slow  # an end-to-end run (glmlab's marker)
def test_tiny_sweep_selects_the_plugins_by_name(tmp_path) -> None:
    # objective=spanbert and positional=alibi are this package's config-group files.
    proc = run_glmlab(
        ["-m", *TINY_OVERRIDES, "name=example", "objective=spanbert", "positional=alibi,rope"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sweeps" / "example"
    results = {}
    for path in sweep.glob("*/result.json"):
        result = json.loads(path.read_text())
        swept = next(v for v in result["variant"] if v.startswith("positional="))
        results[swept] = result["status"]
        config = yaml.safe_load((path.parent / "config.yaml").read_text())
        assert list(config["objective"]["samplers"]) == ["geometric"]
    assert results == {"positional=alibi": "completed", "positional=rope": "completed"}
    assert "positional=alibi" in (sweep / "report.md").read_text()


@pytest.mark.slow  # an end-to-end run (glmlab's marker)
def test_plain_overrides_select_the_plugins_without_config_files(tmp_path) -> None:
    overrides = [
        "positional.name=alibi",
        "~objective.samplers.token",
        "+objective.samplers.geometric={weight:1.0,p:0.2}",
    ]
    proc = run_glmlab([*TINY_OVERRIDES, *overrides, "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["positional"] == {"name": "alibi"}
    assert config["objective"]["samplers"] == {"geometric": {"weight": 1.0, "p": 0.2}}
