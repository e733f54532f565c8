"""A full disk at every place a run writes (docs/RELIABILITY.md, "Full disks"): one line
naming the file and the free space, result.json never claiming a step the disk does not
hold, nothing already written lost, and a rerun (space freed) that finishes the run.

The disk is simulated in-process: :class:`FakeDisk` gives the files a run opens for writing
under one folder (through ``open``, ``os.fdopen`` and the log's handler) a raw writer that
takes a set number of bytes, then fails with ENOSPC, as a full filesystem does (a partial
write, then the error, under Python's own buffering and torch's zip writer). One slow test
does the same on a real, tiny tmpfs where one can be mounted.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.cli.run import execute_run
from glmlab.config.scale import resolve_scale
from glmlab.io import DiskFullError, append_line, atomic_write, read_jsonl
from glmlab.runs.result import read_result
from glmlab.train.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import TINY

FAST = [*TINY, "train.eval_suite=false", "train.keep_checkpoint=last"]


def config(*overrides: str):
    """The config ``python -m glmlab`` runs for these overrides (its scale appended), so
    that an in-process run and the same command in a subprocess train the same model."""
    resolved, _ = resolve_scale([*FAST, *overrides])
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=resolved)


class FakeDisk:
    """Writes under ``root`` fail as on a full disk: ``fail(name, nth, leave)`` makes the
    ``nth`` opening of file ``name`` (its atomic-write temp file included) take ``leave``
    bytes, then raise ENOSPC (the space is back afterwards, as when the failed write's temp
    file is removed); ``fill()`` does so for every file from now on. The free space
    reported is 0 bytes."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root.resolve()
        self.rules: dict[str, tuple[int, int]] = {}
        self.full = False
        self.opened: Counter[str] = Counter()
        self.failed: list[str] = []
        real_open, real_fdopen = builtins.open, os.fdopen

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, int) or not any(c in mode for c in "wax+"):
                return real_open(file, mode, *args, **kwargs)
            path = Path(file).resolve()
            if self.root not in path.parents:
                return real_open(file, mode, *args, **kwargs)
            raw = self._raw(path.name, path, mode.replace("b", "").replace("t", ""))
            return self._wrap(raw, mode, *args, **kwargs)

        def fake_fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if self.root not in path.parents or not any(c in mode for c in "wax+"):
                return real_fdopen(fd, mode, *args, **kwargs)
            name = path.name[1:].rsplit(".", 2)[0]  # ".checkpoint.pt.ab12cd.tmp"
            return self._wrap(self._raw(name, fd, "w"), mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "fdopen", fake_fdopen)
        usage = shutil.disk_usage(root)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=0))

    def fail(self, name: str, nth: int = 1, leave: int = 0) -> None:
        self.rules[name] = (nth, leave)

    def fill(self) -> None:
        self.full = True

    def _raw(self, name: str, target: Any, mode: str) -> io.FileIO:
        self.opened[name] += 1
        nth, leave = self.rules.get(name, (0, 0))
        room = leave if self.full or self.opened[name] == nth else None
        disk = self

        class Raw(io.FileIO):
            hit_full = False

            def write(self, b: Any) -> int:
                nonlocal room
                data = bytes(b)
                if room is None:
                    return super().write(data)
                if room == 0 and data:
                    if not self.hit_full:
                        disk.failed.append(name)  # once per opening, however often retried
                    self.hit_full = True
                    raise OSError(errno.ENOSPC, "No space left on device")
                n = super().write(data[:room])
                room -= n
                return n

        return Raw(target, mode)

    @staticmethod
    def _wrap(raw: io.FileIO, mode: str, buffering: int = -1, encoding: Any = None, **kw: Any):
        buffered = io.BufferedWriter(raw)
        if "b" in mode:
            return buffered
        return io.TextIOWrapper(buffered, encoding=encoding or "utf-8", **kw)


def steps_of(run_dir: Path) -> list[dict]:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    for r in rows:
        r.pop("tokens_per_s", None)
    return rows


def temps(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def one_line_naming(error: str, path: Path) -> None:
    assert "\n" not in error, error
    assert f"could not write {path}: no space left on device (0 bytes free on " in error, error


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    assert execute_run(config(), run, []).status == "completed"
    return run


# ---------------------------------------------------------------------- the write helpers


def test_torch_running_out_of_space_is_named_not_unexpected_pos(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(10)}, "step": 3})
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("checkpoint.pt", leave=1000)
    with pytest.raises(DiskFullError) as err:
        save_checkpoint(path, {"model": {"w": torch.ones(100_000)}, "step": 6})
    assert disk.failed == ["checkpoint.pt"]
    one_line_naming(str(err.value), path)
    assert "unexpected pos" not in str(err.value) and "[Errno" not in str(err.value)
    assert load_checkpoint(path)["step"] == 3 and temps(tmp_path) == []


def test_a_full_disk_in_an_append_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    append_line(path, '{"step": 1}')
    FakeDisk(tmp_path, monkeypatch).fill()
    with pytest.raises(DiskFullError) as err:
        append_line(path, '{"step": 2}')
    one_line_naming(str(err.value), path)
    assert path.read_text() == '{"step": 1}\n'


def test_a_write_that_fails_otherwise_is_not_called_a_full_disk(tmp_path):
    def broken(f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7 vs 3")

    with pytest.raises(RuntimeError, match="unexpected pos"):
        atomic_write(tmp_path / "x.pt", broken)
    assert temps(tmp_path) == []


# ------------------------------------------------------------------- each write of a run


def test_full_disk_in_a_checkpoint_write_records_the_step_on_disk(tmp_path, monkeypatch, reference):
    run = tmp_path / "run"
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("checkpoint.pt", nth=2, leave=4096)  # the step-6 checkpoint; step 3's is kept
    result = execute_run(config(), run, [])
    assert disk.failed == ["checkpoint.pt"]
    assert result.status == "failed" and result.error.startswith("DiskFullError: ")
    one_line_naming(result.error, run / "checkpoint.pt")
    assert result.step == 3 and read_result(run).step == 3  # not 6: the disk holds 3
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 3 and temps(tmp_path) == []
    monkeypatch.undo()
    assert execute_run(config(), run, []).status == "completed"
    assert steps_of(run) == steps_of(reference)


def test_full_disk_in_a_metrics_row_is_repaired_on_rerun(tmp_path, monkeypatch, reference):
    run = tmp_path / "run"
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("metrics.jsonl", nth=3, leave=10)  # step 4's loss row, torn after 10 bytes
    result = execute_run(config(), run, [])
    assert disk.failed == ["metrics.jsonl"]
    one_line_naming(result.error, run / "metrics.jsonl")
    assert result.step == 3 and load_checkpoint(run / "checkpoint.pt")["step"] == 3
    torn = (run / "metrics.jsonl").read_text().splitlines()[-1]
    assert len(torn) == 10 and torn.startswith("{")  # the torn line, not valid JSON
    monkeypatch.undo()
    assert execute_run(config(), run, []).status == "completed"
    assert steps_of(run) == steps_of(reference)


def test_full_disk_in_eval_items_keeps_the_final_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("eval_items.json", leave=100)
    result = execute_run(config("train.eval_suite=true"), run, [])
    assert disk.failed == ["eval_items.json"]
    one_line_naming(result.error, run / "eval_items.json")
    assert result.step == 6 and read_result(run).status == "failed"
    assert not (run / "eval_items.json").exists() and temps(tmp_path) == []
    monkeypatch.undo()
    result = execute_run(config("train.eval_suite=true"), run, [])
    assert result.status == "completed" and (run / "eval_items.json").exists()


def test_full_disk_in_result_json_never_claims_a_finished_run(tmp_path, monkeypatch):
    run = tmp_path / "run"
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("result.json", leave=50)
    result = execute_run(config("train.keep_checkpoint=final"), run, [])
    assert disk.failed == ["result.json"] and result.recorded is False
    assert result.status == "failed" and "rerun to record it" in result.error
    one_line_naming(result.error, run / "result.json")
    assert not (run / "result.json").exists()
    # The run's resumable state is kept (keep_checkpoint=final removes it only once the
    # result is on disk), so the rerun records the run without training it again.
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6
    monkeypatch.undo()
    assert execute_run(config("train.keep_checkpoint=final"), run, []).status == "completed"
    assert read_result(run).status == "completed" and not (run / "checkpoint.pt").exists()


def test_full_disk_in_the_log_is_one_warning_and_the_run_goes_on(
    tmp_path, monkeypatch, capfd, caplog
):
    caplog.set_level(logging.INFO)  # as the app logs: the run's info lines reach app.log
    run = tmp_path / "run"
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("app.log", leave=100)
    result = execute_run(config(), run, [])  # the log's close never raises
    assert result.status == "completed" and disk.failed == ["app.log"]
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "app.log" in line]
    assert len(warnings) == 1 and warnings[0].startswith("glmlab: warning: ")
    one_line_naming(warnings[0], run / "app.log")
    assert "Logging error" not in err and "Traceback" not in err
    assert (run / "app.log").stat().st_size <= 100


def test_full_disk_at_run_start_is_one_line_and_a_result_if_it_fits(tmp_path, monkeypatch):
    run = tmp_path / "run"
    disk = FakeDisk(tmp_path, monkeypatch)
    disk.fail("config.yaml")
    result = execute_run(config(), run, [])
    one_line_naming(result.error, run / "config.yaml")
    recorded = json.loads((run / "result.json").read_text())  # the result still fits
    assert recorded["status"] == "failed" and recorded["step"] == 0
    assert not (run / "metrics.jsonl").exists() and temps(tmp_path) == []


def test_full_disk_everywhere_at_run_start_raises_nothing(tmp_path, monkeypatch, capfd):
    run = tmp_path / "run"
    FakeDisk(tmp_path, monkeypatch).fill()
    result = execute_run(config(), run, [])
    assert result.status == "failed" and result.recorded is False
    one_line_naming(result.error, run / "config.yaml")
    assert result.error.endswith("; and result.json could not be written either")
    assert sorted(p.name for p in run.iterdir()) == []  # the lock goes with the run
    assert "Traceback" not in capfd.readouterr().err


def test_a_full_disk_where_hydra_writes_is_one_line(monkeypatch):
    import glmlab.cli.app
    from glmlab.cli.help import main_with_prepared_argv

    def hydra_writes(error: OSError):
        def main() -> None:  # as OmegaConf.save fails writing a sweep's multirun.yaml
            raise error

        return main

    monkeypatch.setattr(sys, "argv", ["glmlab", "train.lr=0.001,0.002", "-m"])
    monkeypatch.setattr(glmlab.cli.app, "main", hydra_writes(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(SystemExit) as exit_:
        main_with_prepared_argv()
    assert exit_.value.code == (
        "glmlab: no space left on device while writing the sweep's record (multirun.yaml, "
        "which Hydra writes first): free some space and rerun"
    )
    other = OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(glmlab.cli.app, "main", hydra_writes(other))
    with pytest.raises(OSError) as err:  # not a full disk: its own error, unchanged
        main_with_prepared_argv()
    assert err.value is other


def test_a_full_disk_under_the_sweep_report_is_one_line(tmp_path, monkeypatch, capsys, caplog):
    from omegaconf import OmegaConf

    import glmlab.cli.app
    from glmlab.cli.callback import SweepReportCallback
    from glmlab.runs.result import RunResult, write_result

    monkeypatch.setattr(glmlab.cli.app, "_sweep_exit", [])
    sweep = tmp_path / "sweep"
    for seed in range(2):
        write_result(sweep / f"r{seed}", RunResult(status="completed", step=6, seed=seed))
        append_line(sweep / f"r{seed}" / "metrics.jsonl", '{"step": 6, "loss": 5.0}')
    FakeDisk(tmp_path, monkeypatch).fill()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    SweepReportCallback().on_multirun_end(config)  # never raises: the runs are on disk
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    message = errors[0].getMessage()
    assert message.startswith("no sweep report: could not write ") and "\n" not in message
    assert "no space left on device (0 bytes free on " in message
    assert message.endswith(f"rebuild it with: glmlab report {sweep}")
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith("2 runs: 2 completed, 0 diverged, 0 failed")
    )


# ------------------------------------------------------------------ a real, tiny tmpfs


def _tmpfs_available() -> bool:
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    try:
        proc = subprocess.run(
            [*probe, "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || exit 1"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _tmpfs_available(), reason="no user namespace to mount a tmpfs in")
def test_a_real_full_tmpfs_fails_the_checkpoint_and_the_rerun_finishes(tmp_path, reference):
    """``python -m glmlab`` on a 700 KiB tmpfs: the step-3 checkpoint (about 420 KiB) fits,
    the step-6 one beside it does not. Then the tmpfs grows and the rerun finishes."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run = [sys.executable, "-m", "glmlab", *FAST, f"hydra.run.dir={mnt}/run"]
    script = (
        f"mount -t tmpfs -o size=700k tmpfs {mnt} && "
        f"{{ {' '.join(run)} 2>{tmp_path}/err1; echo $? >{tmp_path}/rc1; "
        f"cp {mnt}/run/result.json {tmp_path}/result1.json; "
        f"mount -o remount,size=4m {mnt} && {' '.join(run)} >/dev/null 2>&1; "
        f"cp -r {mnt}/run {tmp_path}/run; }}"
    )
    subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        check=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    err = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "1", err
    last = err.strip().splitlines()[-1]
    assert last.startswith("glmlab: run failed: DiskFullError: could not write ") and (
        "checkpoint.pt: no space left on device (" in last
    ), err
    assert "unexpected pos" not in err and "Traceback" not in err
    first = json.loads((tmp_path / "result1.json").read_text())
    assert first["status"] == "failed" and first["step"] == 3
    assert read_result(tmp_path / "run").status == "completed"
    assert steps_of(tmp_path / "run") == steps_of(reference)
