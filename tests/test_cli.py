"""The main command end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import TINY, run_glmlab

pytestmark = pytest.mark.slow


def test_single_run_writes_metrics_checkpoint_and_result(tmp_path):
    proc = run_glmlab([*TINY, "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "completed" and result["step"] == 6
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in rows if "val_loss" in r] == [3, 6]
    # The result's validation loss is the last one measured (step 6), not any other number.
    assert result["final_val_loss"] == [r["val_loss"] for r in rows if "val_loss" in r][-1]
    # train.keep_checkpoint=final (the default): the final weights stay, the resumable
    # state goes once result.json is written.
    assert (run / "weights.pt").exists() and not (run / "checkpoint.pt").exists()
    assert (run / "eval_items.json").exists()
    assert "parameters" in proc.stderr + proc.stdout


def test_rerun_in_finished_directory_is_skipped(tmp_path):
    assert run_glmlab([*TINY, "hydra.run.dir=run"], cwd=tmp_path).returncode == 0
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    proc = run_glmlab([*TINY, "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 0 and "skipped" in proc.stderr + proc.stdout
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


def test_bad_plugin_name_is_one_clear_error(tmp_path):
    proc = run_glmlab([*TINY, "positional.name=no_such_scheme", "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "no positional plugin named 'no_such_scheme'" in proc.stderr
    assert "'rope' (glmlab)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "failed"


def test_unknown_config_key_is_one_clear_error(tmp_path):
    proc = run_glmlab([*TINY, "+train.learning_rate=1", "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "unknown key(s) ['learning_rate'] in the 'train' config" in proc.stderr


def test_wrong_type_stops_the_command_with_one_line_before_any_run(tmp_path):
    proc = run_glmlab([*TINY, "train.max_steps=lots", "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "glmlab: config error: train.max_steps=lots: must be an integer >= 1"
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert not (tmp_path / "run").exists()  # refused when composed: no run directory


def test_multirun_survives_a_failing_run_and_writes_report(tmp_path):
    proc = run_glmlab(
        [
            "-m",
            *TINY,
            "name=tiny_sweep",
            "objective.shuffle_spans=true,false",
            "seed=0,1",
            "report.baseline='objective.shuffle_spans=true'",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sweeps" / "tiny_sweep"
    assert len(list(sweep.glob("*/result.json"))) == 4
    report = (sweep / "report.md").read_text()
    assert "objective.shuffle_spans=true **(baseline)**" in report
    assert "objective.shuffle_spans=false" in report
    assert "2 / 2" in report and "every run completed" in report

    # A sweep with one failing variant still finishes, names the failure in its report,
    # exits 1 saying how many failed, and its rerun skips the finished runs.
    proc = run_glmlab(
        ["-m", *TINY, "name=mixed", "positional.name=learned_2d,no_such_scheme"], cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith("1 completed, 0 diverged, 1 failed")
    report = (tmp_path / "sweeps" / "mixed" / "report.md").read_text()
    assert "failed: positional.name=no_such_scheme" in report
    assert "no positional plugin named 'no_such_scheme'" in report
    proc = run_glmlab(
        ["-m", *TINY, "name=mixed", "positional.name=learned_2d,no_such_scheme"], cwd=tmp_path
    )
    assert "already completed: skipped" in proc.stderr + proc.stdout


def test_report_command_rebuilds_the_report(tmp_path):
    assert run_glmlab(["-m", *TINY, "name=r", "seed=0,1"], cwd=tmp_path).returncode == 0
    report = tmp_path / "sweeps" / "r" / "report.md"
    report.unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.cli", "report", str(report.parent)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(defaults)" in report.read_text()


def test_plugins_listing_json():
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.cli", "plugins", "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {"kind": "positional", "name": "rope"}.items() <= next(
        r for r in rows if r["name"] == "rope"
    ).items()
