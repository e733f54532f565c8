"""Provenance: what result.json records about the code, plugins, libraries and machine,
and the report's section that flags runs whose versions differ."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

import glmlab
from glmlab.report import build_report
from glmlab.runs import provenance


def test_collect_records_code_plugins_libraries_machine_and_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    cfg = OmegaConf.create(
        {
            "positional": {"name": "rope"},
            "norm_layout": {"name": "pre_ln"},
            "mask_builder": {"name": "glm"},
            "attention": {"name": "auto"},
            "objective": {"kind": "glm", "samplers": {"token": {"weight": 1.0}}},
        }
    )
    prov = provenance.collect(cfg)
    assert prov["glmlab"]["version"] == glmlab.__version__ == "0.2.0"
    assert prov["torch"]["version"] == torch.__version__
    assert prov["torch"]["cuda"] == torch.version.cuda
    assert prov["slurm_job_id"] == "4242"
    assert prov["host"] and prov["device"]["cpu"]
    assert dt.datetime.fromisoformat(prov["started_at"]).tzinfo is not None
    rope = prov["plugins"]["positional"]
    assert rope == {"name": "rope", "distribution": "glmlab", "version": glmlab.__version__}
    assert prov["plugins"]["span_sampler.token"]["distribution"] == "glmlab"
    assert prov["plugins"]["attention"]["distribution"] is None  # 'auto' resolves at run time
    provenance.at_end(prov, "sdpa")
    assert prov["plugins"]["attention"]["name"] == "sdpa"
    assert prov["plugins"]["attention"]["configured"] == "auto"
    assert prov["ended_at"] >= prov["started_at"]
    json.dumps(prov)  # result.json must be able to hold it


def test_end_with_a_backend_the_registry_lacks_keeps_the_record_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run never fails for its provenance: a backend name the registry cannot resolve
    leaves the configured entry (the run's ``attention`` says what ran) and logs why."""
    configured = {"name": "auto", "distribution": None, "version": None}
    prov = {"plugins": {"attention": configured}}
    with caplog.at_level(logging.DEBUG, logger="glmlab"):
        provenance.at_end(prov, "no_such_backend")
    assert prov["plugins"]["attention"] == configured
    assert prov["ended_at"]
    (record,) = [r for r in caplog.records if "no_such_backend" in r.getMessage()]
    assert record.levelno == logging.DEBUG and "no attention plugin named" in record.getMessage()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_state_commit_dirty_and_none_outside_a_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "f.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    provenance.git_state.cache_clear()
    assert provenance.git_state(str(repo)) == (head.strip(), False)
    (repo / "f.py").write_text("x = 2\n")
    provenance.git_state.cache_clear()
    assert provenance.git_state(str(repo)) == (head.strip(), True)
    outside = tmp_path / "plain"
    outside.mkdir()
    provenance.git_state.cache_clear()
    assert provenance.git_state(str(outside)) == (None, None)
    provenance.git_state.cache_clear()


def _run(
    sweep: Path, name: str, seed: int, torch_version: str, host: str, rope: str = "0.1.0"
) -> None:
    run = sweep / name
    run.mkdir(parents=True)
    prov = {
        "glmlab": {"version": "0.1.0", "commit": "abc", "dirty": False},
        "torch": {"version": torch_version, "cuda": None},
        "host": host,
        "plugins": {
            "positional": {"name": "rope", "distribution": "glmlab", "version": rope},
            "norm_layout": {"name": f"ln{seed}", "distribution": "glmlab", "version": "0.1.0"},
        },
        "started_at": f"2026-01-0{seed + 1}T00:00:00+00:00",
        "ended_at": f"2026-01-0{seed + 1}T01:00:00+00:00",
    }
    result = {"status": "completed", "seed": seed, "variant": [], "final_val_loss": 1.0 + seed}
    result["provenance"] = prov
    (run / "result.json").write_text(json.dumps(result))
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))


def test_report_shows_provenance_once_and_flags_differing_versions(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _run(sweep, "seed=0", 0, "2.13.0", "node1")
    _run(sweep, "seed=1", 1, "2.13.0", "node2")
    _run(sweep, "seed=2", 2, "2.12.1", "node1", rope="0.2.0")
    md = build_report(sweep).read_text()
    section = md.split("## Provenance")[1].split("\n## ")[0]
    assert "| glmlab.commit | `abc` |" in section  # shared: once
    assert md.count("`abc`") == 1
    assert "Runs started 2026-01-01T00:00:00+00:00 … ended 2026-01-03T01:00:00+00:00" in section
    assert "⚠ **torch.version differs between runs**" in section
    assert "  - `2.12.1`: seed=2" in section
    assert "| host | varies: " in section and "host differs" not in section
    # One plugin name resolved to two versions: flagged; a swept plugin choice is not.
    assert "⚠ **plugins.positional differs between runs**" in section
    assert "  - `rope (glmlab 0.2.0)`: seed=2" in section
    assert "| plugins.norm_layout | varies: `ln0 (glmlab 0.1.0)` (1 runs)" in section


def test_report_without_provenance_says_so(tmp_path: Path) -> None:
    run = tmp_path / "sweep" / "a"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"status": "completed", "seed": 0}))
    md = build_report(tmp_path / "sweep").read_text()
    assert "No run recorded its provenance" in md
