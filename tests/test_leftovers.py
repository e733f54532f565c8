"""What a run leaves behind and what the tools print: no ``.lock`` once a run ends, nothing
at all after a config refused at config time, and model text on one printable line."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from glmlab.cli import main as cli
from glmlab.cli.infill import Infilled
from glmlab.cli.run import execute_run
from glmlab.cli.text import printable
from glmlab.runs.lock import RunLock, RunLocked
from tests.conftest import TINY


def test_a_released_lock_leaves_no_file(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().startswith("pid ")
    assert not (tmp_path / ".lock").exists()


def test_a_waiter_takes_the_lock_after_the_holder_deleted_its_file(tmp_path):
    """The holder deletes the file before letting go; the waiter, woken on the deleted file,
    locks the path afresh, so a third process can never hold the lock beside it."""
    entered = threading.Event()
    inside: list[str] = []

    def wait_for_it() -> None:
        with RunLock(tmp_path):  # blocks until the main thread's lock is gone
            inside.append("waiter")
            with pytest.raises(RunLocked):
                with RunLock(tmp_path, wait=False):
                    pass
            entered.set()

    with RunLock(tmp_path):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.3)
        assert inside == []  # still waiting
    waiter.join(timeout=30)
    assert entered.is_set() and inside == ["waiter"]
    assert not (tmp_path / ".lock").exists()


def _config(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


def test_a_single_run_refused_at_config_time_leaves_nothing(tmp_path):
    run = tmp_path / "runs" / "default" / "train.max_steps=0"
    run.mkdir(parents=True)  # as Hydra makes it before the job starts
    result = execute_run(_config("train.max_steps=0"), run, ["train.max_steps=0"])
    assert result.status == "failed" and result.recorded is False
    assert "train.max_steps=0: must be" in result.error
    assert not run.exists()


def test_a_refused_config_leaves_another_runs_directory_untouched(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text('{"status": "completed", "step": 6}')
    execute_run(_config("train.batch_size=0"), run, ["train.batch_size=0"])
    assert [p.name for p in run.iterdir()] == ["result.json"]


def test_printable_escapes_control_characters():
    assert printable("a\nb\tc\r\x1b[31md\u2028e") == "a\\nb\\tc\\r\\x1b[31md\\u2028e"
    assert printable("C:\\dir") == "C:\\\\dir" and printable("plain text ü") == "plain text ü"


def test_infill_prints_the_filled_text_on_one_line(monkeypatch, capsys, tmp_path):
    class Fake:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def fill(self, text: str, **kwargs) -> Infilled:
            return Infilled(text.replace("[MASK]", "x\ny"), ["x\ny"])

    monkeypatch.setattr("glmlab.cli.infill.Infiller", Fake)
    args = ["infill", "--checkpoint", str(tmp_path), "--text", "Return the [MASK] of a list."]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert out == "Return the x\\ny of a list.\n"  # as glmlab inspect shows a newline
    assert "blank 0: 'x\\ny'" in err


@pytest.mark.slow
def test_a_finished_run_leaves_no_lock(tmp_path: Path):
    from tests.conftest import run_glmlab

    proc = run_glmlab([*TINY, "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "result.json").exists()
    assert not (tmp_path / "run" / ".lock").exists()
