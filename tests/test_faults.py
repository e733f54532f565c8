"""Fault injection: what a run directory and the cache survive (docs/RELIABILITY.md).

Quick tests damage files and inject failures in-process; the slow ones kill real
``python -m glmlab`` processes (kill -9 at random points and inside checkpoint and metrics
writes, Ctrl-C, two processes on one directory) and assert that nothing is lost: the run
finishes with the metrics and weights of an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.cli.run import execute_run
from glmlab.config.rules import ConfigError
from glmlab.config.spec import parse_config
from glmlab.io import (
    DiskFullError,
    append_line,
    atomic_write,
    clean_stale_temps,
    read_jsonl,
    write_text_atomic,
)
from glmlab.runs.identity import config_identity, identity_changes
from glmlab.runs.lock import RunLock, RunLocked
from glmlab.runs.metrics import repair_metrics
from glmlab.runs.result import (
    RunResult,
    outcome_counts,
    outcome_line,
    read_result,
    sweep_exit_status,
    sweep_statuses,
    write_result,
)
from glmlab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import TINY, run_glmlab

# keep_checkpoint=last: the faults are checked against the resumable state a run leaves.
FAST = [*TINY, "train.eval_suite=false", "train.keep_checkpoint=last"]


# prepare_data's settings for a small corpus (the run's come from the data config).
SMALL_DATA = {
    "vocab_size": 300,
    "n_sentinels": 2,
    "chunk_len": 32,
    "packing": True,
    "min_tokens": 8,
}


def config(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=[*FAST, *overrides])


def temps(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def steps_of(run_dir: Path) -> list[dict]:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    for r in rows:
        r.pop("tokens_per_s", None)
    return rows


# ----------------------------------------------------------------- bad values, in-process

BAD_VALUES = [
    ("train.eval_batches=0", r"train\.eval_batches=0: must be an integer >= 1"),
    ("data.seq_len=0", r"data\.seq_len=0: must be an integer >= 16"),
    ("train.grad_accum=0", r"train\.grad_accum=0: must be an integer >= 1"),
    ("train.max_steps=0", r"train\.max_steps=0: must be an integer >= 1"),
    ("train.max_steps=-3", r"train\.max_steps=-3: must be an integer >= 1"),
    ("train.checkpoint_interval=0", r"train\.checkpoint_interval=0: must be an integer >= 1"),
    ("train.log_interval=0", r"train\.log_interval=0: must be an integer >= 1"),
    ("train.batch_size=0", r"train\.batch_size=0: must be an integer >= 1"),
    ("train.lr=0", r"train\.lr=0: must be a number > 0"),
    ("train.device=gpu", r"train\.device=gpu: must be one of auto, cpu"),
    ("objective.kind=bert", r"objective\.kind=bert: must be one of glm, mlm, clm"),
    ("model.dropout=1.5", r"model\.dropout=1.5: must be a number >= 0 and < 1"),
    ("train.stop_after=0", r"train\.stop_after=0: must be null or an integer >= 1"),
    ("data.vocab_size=290", r"data\.vocab_size=290: must be >= 295 with data\.n_sentinels=16"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_value_is_refused_before_any_data_is_loaded(override, message, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=message):
        parse_config(config(override))

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the config was checked")

    monkeypatch.setattr("glmlab.assembly.data.prepare_data", no_data)
    result = execute_run(config(override), tmp_path, [override])
    assert result.status == "failed"
    assert "ConfigError" in result.error
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoint.pt").exists()


# Wrong types and unknown keys: refused by the schema when Hydra composes the config
# (glmlab/config/schema.py's dataclasses in the ConfigStore), reported as one line by the CLI.
COMPOSITION_ERRORS = [
    ("train.max_steps=lots", "train.max_steps=lots: must be an integer >= 1"),
    ("model.dropout=x", "model.dropout=x: must be a number >= 0 and < 1"),
    ("train.compile=maybe", "train.compile=maybe: must be null or true or false"),
    ("data.packing=sometimes", "data.packing=sometimes: must be true or false"),
    ("train.lr=[1,2]", "train.lr=[1,2]: must be a number > 0"),
    ("train.learning_rate=1", "train.learning_rate: no such key in 'train'; valid keys: "),
    ("positional=nope", "positional=nope: no such positional; choose one of "),
]


@pytest.mark.parametrize(
    ("override", "message"), COMPOSITION_ERRORS, ids=[o for o, _ in COMPOSITION_ERRORS]
)
def test_wrong_type_is_refused_when_the_config_is_composed(override, message):
    from hydra.errors import HydraException

    from glmlab.config.errors import composition_error_line

    with pytest.raises(HydraException) as err:
        config(override)
    line = composition_error_line(err.value)
    assert line.startswith(message) and "\n" not in line, line


def test_every_problem_is_named_at_once():
    with pytest.raises(ConfigError) as err:
        parse_config(config("train.batch_size=0", "train.log_interval=0"))
    assert "train.batch_size=0" in str(err.value) and "train.log_interval=0" in str(err.value)


def test_every_bounded_field_declares_its_rule():
    """The rules live on the dataclass fields (so they can serve as structured configs)."""
    import dataclasses

    from glmlab.config.rules import Allowed
    from glmlab.config.schema import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in ("max_steps", "batch_size", "grad_accum", "eval_batches", "log_interval"):
        assert isinstance(fields[name].metadata["allowed"], Allowed), name


# ---------------------------------------------------------------------- result.json


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"status": "compl',
        b"[1, 2]",
        b'{"step": 3}',
        b"\xff\xfe",
        b'{"status": 5, "step": 3}',
    ],
)
def test_unreadable_result_reads_as_failed_naming_the_file(content, tmp_path):
    (tmp_path / "result.json").write_bytes(content)
    result = read_result(tmp_path)
    assert result is not None and result.status == "failed"
    assert result.unreadable == str(tmp_path / "result.json")
    assert str(tmp_path / "result.json") in result.error and "\n" not in result.error


def test_a_field_of_the_wrong_type_reads_as_absent_naming_file_and_field(tmp_path, caplog):
    """The run's own word (its status) stands; a field that is not what glmlab writes
    (a hand edit, another tool) reads as its default, and the log says which."""
    (tmp_path / "result.json").write_text(
        json.dumps({"status": "completed", "step": 6.0, "eval": [0.5], "job_logs": 7, "error": 3})
    )
    with caplog.at_level(logging.WARNING, logger="glmlab"):
        result = read_result(tmp_path)
    assert (result.status, result.step, result.error) == ("completed", 6, "3")
    assert result.eval is None and result.job_logs is None and result.unreadable is None
    said = caplog.text
    assert f"{tmp_path / 'result.json'}: field 'eval' is [0.5], not an object" in said
    assert "field 'job_logs' is 7, not an object: read as absent" in said


def test_an_older_result_reads_with_defaults_and_keeps_unknown_keys(tmp_path):
    """A result.json from before a field existed reads with that field's default; a key
    this version does not know survives a read and a write (nothing is dropped)."""
    (tmp_path / "result.json").write_text(
        json.dumps({"status": "completed", "step": 4, "final_val_loss": 5, "future": {"x": 1}})
    )
    result = read_result(tmp_path)
    assert (result.status, result.step, result.final_val_loss) == ("completed", 4, 5.0)
    assert result.eval is None and result.compute is None and result.provenance == {}
    assert result.overrides == [] and result.extra == {"future": {"x": 1}}
    write_result(tmp_path, result)
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["future"] == {"x": 1} and written["tokens_per_s"] is None
    assert "recorded" not in written and "unreadable" not in written
    assert read_result(tmp_path) == result


def test_unreadable_result_never_stops_the_report(tmp_path):
    from glmlab.report import build_report

    sweep = tmp_path / "sweep"
    for name, status in (("a", "completed"), ("b", "completed")):
        run = sweep / name
        run.mkdir(parents=True)
        write_result(
            run, RunResult(status=status, step=4, final_val_loss=5.0, variant=[f"x={name}"])
        )
        (run / "metrics.jsonl").write_text('{"step": 2, "loss": 6.0}\n{"step": 4, "lo')  # torn
    (sweep / "b" / "result.json").write_text('{"status": "comp')
    md = build_report(sweep).read_text()
    assert "unreadable" in md and str(sweep / "b" / "result.json") in md
    assert sorted(sweep_statuses(sweep)) == ["completed", "failed"]


def test_multiline_error_is_one_line_in_result_and_report(tmp_path):
    write_result(tmp_path, RunResult(status="failed", error="ValueError: one\ntwo\n\nthree"))
    assert (
        json.loads((tmp_path / "result.json").read_text())["error"] == "ValueError: one two three"
    )


def test_exit_status_rule():
    rule = sweep_exit_status
    assert rule(["completed", "diverged", "completed"]) == 0
    assert rule(["completed", "failed"]) == 1
    assert rule(["failed", "failed"]) == 1
    assert rule(["completed", "unfinished"]) == 1
    assert rule(["completed", "stopped"]) == 1  # not a result yet
    counts = outcome_counts(["completed", "failed", "failed", "unfinished"])
    assert outcome_line(counts) == "4 runs: 1 completed, 0 diverged, 2 failed, 1 unfinished"


# -------------------------------------------------------------------- metrics.jsonl


def test_torn_last_line_is_repaired_with_a_warning_never_glued(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2, "loss": 6.0}\n{"step": 4, "loss": 5.0}\n{"step": 6, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [2, 4]  # a reader skips it
    assert "torn" in caplog.text
    kept = repair_metrics(path, through_step=4)
    assert [r["step"] for r in kept] == [2, 4]
    append_line(path, json.dumps({"step": 6, "loss": 4.0}))
    assert [r["step"] for r in read_jsonl(path)] == [2, 4, 6]  # the next row is its own line


def test_rows_after_the_checkpoint_are_dropped_and_none_without_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0} for s in (2, 4, 6)] + [{"step": 6, "eval": {"a": 1}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["step"] for r in repair_metrics(path, 4)] == [2, 4]
    assert repair_metrics(path, 0) == [] and path.read_text() == ""  # killed before a checkpoint
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = repair_metrics(path, 6, drop_eval_at_step=True)  # the final suite runs again
    assert kept == rows[:3]


def test_run_killed_before_its_first_checkpoint_restarts_clean(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "loss": 9.0}\n{"step": 4, "lo')
    result = execute_run(config("train.checkpoint_interval=100"), tmp_path, [])
    assert result.status == "completed"
    steps = [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in r]
    assert steps == [2, 4, 6]  # each once, from this run


# ---------------------------------------------------------------------- atomic writes


def test_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "report.md", "x")
        assert path.stat().st_mode & 0o777 == 0o640
        os.umask(0o022)
        save_checkpoint(tmp_path / "checkpoint.pt", {"model": {}})
        assert (tmp_path / "checkpoint.pt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError(
            "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
            "writing file data/0: file write failed"
        ),
    ],
)
def test_disk_full_names_the_file_and_keeps_the_previous_version(error, tmp_path):
    path = write_text_atomic(tmp_path / "checkpoint.pt", "previous")

    def fail(f):
        f.write(b"half")
        raise error

    with pytest.raises(DiskFullError, match=r"could not write .*checkpoint\.pt: no space left"):
        atomic_write(path, fail)
    assert path.read_text() == "previous" and temps(tmp_path) == []


def test_disk_full_while_training_is_a_failed_run_and_resumes(tmp_path, monkeypatch):
    """ENOSPC injected into glmlab.io's fsync on the second checkpoint write."""
    import glmlab.io

    real_fsync, calls = os.fsync, []

    def full_disk_fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".checkpoint.pt." in name:
            calls.append(name)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(glmlab.io.os, "fsync", full_disk_fsync)
    result = execute_run(config(), tmp_path / "run", [])
    assert result.status == "failed" and "no space left on device" in result.error
    assert "checkpoint.pt" in result.error and result.step == 3  # the step on disk
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3  # the previous one
    assert temps(tmp_path) == []
    monkeypatch.setattr(glmlab.io.os, "fsync", real_fsync)
    assert execute_run(config(), tmp_path / "run", []).status == "completed"
    reference = tmp_path / "reference"
    execute_run(config(), reference, [])
    assert steps_of(tmp_path / "run") == steps_of(reference)


def test_stray_temps_are_cleaned(tmp_path):
    stray = tmp_path / ".checkpoint.pt.abc123.tmp"
    stray.write_bytes(b"half a checkpoint")
    keep = tmp_path / "checkpoint.pt"
    keep.write_bytes(b"x")
    assert clean_stale_temps(tmp_path, older_than_s=3600) == []  # too young to be stale
    assert clean_stale_temps(tmp_path) == [stray] and keep.exists()


def test_unwritable_run_directory_is_reported_not_raised(tmp_path, monkeypatch):
    def read_only(path, text):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr("glmlab.cli.run.write_text_atomic", read_only)
    monkeypatch.setattr("glmlab.cli.run.write_result", read_only)
    result = execute_run(config("norm_layout.name=nope"), tmp_path, [])
    assert result.status == "failed" and result.recorded is False
    assert "could not be written" in result.error and "Read-only" in result.error


# ----------------------------------------------------------------------- checkpoints


def _damaged(kind: str, path: Path) -> None:
    save_checkpoint(path, {"model": {"w": torch.ones(1000)}, "step": 3})
    data = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        # Seeded: which error torch's unpickler meets depends on the bytes.
        path.write_bytes(random.Random(kind).randbytes(2000))
    elif kind == "pickle":

        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))

        torch.save({"model": Evil()}, path)


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "pickle"])
def test_damaged_checkpoint_names_the_file_and_what_to_do(kind, tmp_path):
    path = tmp_path / "checkpoint.pt"
    _damaged(kind, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert str(path) in text and "Delete it to restart" in text
    assert "weights_only" not in text


def test_damaged_checkpoint_fails_the_run_with_the_step_on_disk(tmp_path):
    run = tmp_path / "run"
    assert execute_run(config("train.stop_after=3"), run, []).status == "stopped"
    _damaged("truncated", run / "checkpoint.pt")
    result = execute_run(config(), run, [])
    assert result.status == "failed" and "cannot load checkpoint" in result.error
    assert result.step == 3  # what the run directory holds, not 0
    assert read_result(run).status == "failed"


# Every file a run directory holds, damaged after a run was stopped at its step-3 checkpoint.
RUN_FILES = [
    "config.yaml",
    "identity.json",
    "metrics.jsonl",
    "result.json",
    ".lock",
    ".hydra/overrides.yaml",
]


@pytest.fixture(scope="module")
def in_process_reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    assert execute_run(config(), run, []).status == "completed"
    return run


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["empty", "garbage"])
@pytest.mark.parametrize("name", RUN_FILES)
def test_damaged_run_file_never_blocks_the_rerun(name, damage, tmp_path, in_process_reference):
    run = tmp_path / "run"
    assert execute_run(config("train.stop_after=3"), run, []).status == "stopped"
    path = run / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"" if damage == "empty" else b"\x00\xff{not: [valid\n" + os.urandom(64))
    result = execute_run(config(), run, [])
    assert result.status == "completed", result.error
    rows, expected = steps_of(run), steps_of(in_process_reference)
    if name == "metrics.jsonl":  # what the damage destroyed is gone; the rest is whole
        expected = [r for r in expected if r["step"] > 3]
    assert rows == expected
    assert read_result(run).status == "completed"


def test_damaged_config_without_identity_is_refused_with_a_way_on(tmp_path):
    run = tmp_path / "run"
    assert execute_run(config("train.stop_after=3"), run, []).status == "stopped"
    (run / "identity.json").unlink()
    (run / "config.yaml").write_text("{{{ not yaml")
    refused = execute_run(config(), run, [])
    assert "config.yaml: unreadable" in refused.error and "run.on_change=" in refused.error
    assert execute_run(config("run.on_change=resume"), run, []).status == "completed"


# ------------------------------------------------------------------------- the cache


def _tiny_jsonl(path: Path, n: int = 40) -> Path:
    texts = [f"Line {i} of the corpus says that {i} times {i} is {i * i}. " * 4 for i in range(n)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.mark.parametrize("damage", ["empty", "garbage", "bit_flip", "meta"])
def test_damaged_cached_examples_are_rebuilt(damage, tmp_path, monkeypatch):
    from glmlab.data.pipeline import prepare_data

    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path / "cache"))
    corpus = {"path": str(_tiny_jsonl(tmp_path / "c.jsonl"))}
    first = prepare_data("jsonl", corpus, **SMALL_DATA)
    want = np.array(first.train.ids)  # in memory: the stores are memory-mapped files
    del first
    stores = sorted((tmp_path / "cache" / "examples").glob("*/*/meta.json"))
    assert len(stores) == 3  # train, validation and test
    for meta in stores:
        ids = meta.parent / "ids.bin"
        data = ids.read_bytes()
        # Rewritten as new files (unlink first): a process mapping the old ones keeps them.
        target = meta if damage == "meta" else ids
        content = {
            "empty": b"",
            "garbage": random.Random(1).randbytes(300),
            "bit_flip": data[:10] + bytes([data[10] ^ 1]) + data[11:],
            "meta": b"{not json",
        }[damage]
        target.unlink()
        target.write_bytes(content)
    again = prepare_data("jsonl", corpus, **SMALL_DATA)
    assert np.array_equal(again.train.ids, want)
    for meta in stores:
        assert json.loads(meta.read_text())["checksums"]  # rebuilt whole


def test_damaged_cached_tokenizer_and_corpus_are_rebuilt(tmp_path, monkeypatch):
    from glmlab.data.pipeline import prepare_data

    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path / "cache"))
    corpus = {"path": str(_tiny_jsonl(tmp_path / "c.jsonl"))}
    first = prepare_data("jsonl", corpus, **SMALL_DATA)
    want = np.array(first.validation.ids)  # in memory: the stores are memory-mapped files
    del first
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            f.unlink()  # a new empty file: a process still mapping the old one keeps it
            f.write_bytes(b"")
    again = prepare_data("jsonl", corpus, **SMALL_DATA)
    assert np.array_equal(again.validation.ids, want)


# ------------------------------------------------------------------------ corpora


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    from glmlab.data.corpus import load_corpus

    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"{path}:2: not valid UTF-8 \(byte 0xe9"):
        load_corpus("jsonl", path=str(path))


@pytest.mark.parametrize("fraction", [0, 1, 1.5, "half"])
def test_validation_fraction_is_checked_before_the_corpus_is_read(fraction, tmp_path):
    from glmlab.data.corpus import load_corpus

    missing = tmp_path / "not_there.jsonl"  # never opened: the fraction is checked first
    with pytest.raises(ValueError, match=rf"validation_fraction={fraction}: must be a number in"):
        load_corpus("jsonl", path=str(missing), validation_fraction=fraction)


def test_overlong_jsonl_line_is_refused_without_reading_it_whole(tmp_path):
    from glmlab.data.corpus import load_corpus

    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "word " * 300_000}) + "\n")  # 1.5 MB on one line
    with pytest.raises(ValueError, match=rf"{path}:1: line longer than 1 MiB.*max_line_mb"):
        load_corpus("jsonl", path=str(path), max_line_mb=1)


def test_empty_validation_split_is_named_before_tokenizing(tmp_path, monkeypatch):
    from glmlab.data.pipeline import prepare_data

    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path / "cache"))
    path = _tiny_jsonl(tmp_path / "c.jsonl", n=1)
    with pytest.raises(ValueError, match="the validation split is empty"):
        prepare_data("jsonl", {"path": str(path)}, **SMALL_DATA)
    assert not (tmp_path / "cache" / "tokenizers").exists()


def test_corpus_too_small_for_the_suite_fails_before_training(tmp_path):
    path = _tiny_jsonl(tmp_path / "c.jsonl", n=40)
    cfg = config(
        "data=jsonl",
        f"data.corpus_options.path={path}",
        "data.vocab_size=300",
        "data.n_sentinels=2",
        "data.corpus_options.validation_fraction=0.05",
        "train.eval_suite=true",
        "data.min_tokens=1",
    )
    # Every test passage is shorter than the suite needs once seq_len is this short.
    from glmlab.eval.items import MIN_PASSAGE_TOKENS

    cfg.data.seq_len = MIN_PASSAGE_TOKENS
    cfg.data.part_b_reserve = 0.5
    result = execute_run(cfg, tmp_path / "run", [])
    assert result.status == "failed" and "the test split" in result.error
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # not a step was trained


# ------------------------------------------------------------------ identity and lock


def test_identity_ignores_what_does_not_change_results():
    base = {"train": {"lr": 0.003, "progress": True, "threads": 1}, "name": "a"}
    other = {"train": {"lr": 0.003, "progress": False, "threads": 4}, "name": "b"}
    plugins = {"glmlab": "0.1.0"}
    a = config_identity(base, plugins)
    assert a["fingerprint"] == config_identity(other, plugins)["fingerprint"]
    changed = config_identity({"train": {"lr": 0.01}}, {"glmlab": "0.2.0"})
    assert identity_changes(a, changed) == [
        "train.lr: 0.003 -> 0.01",
        "plugin glmlab: '0.1.0' -> '0.2.0'",
    ]


def test_second_process_on_a_locked_directory_is_told_who_holds_it(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match=rf"{tmp_path} is in use by pid {os.getpid()}"):
            with RunLock(tmp_path, wait=False):
                pass
    with RunLock(tmp_path, wait=False):  # released with its holder
        pass


def test_changed_config_is_refused_restarted_or_resumed(tmp_path):
    run = tmp_path / "run"
    assert execute_run(config(), run, []).status == "completed"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    refused = execute_run(config("train.lr=0.01"), run, ["train.lr=0.01"])
    assert refused.status == "failed" and refused.recorded is False
    assert "train.lr: 0.003 -> 0.01" in refused.error
    assert "run.on_change=restart" in refused.error and "run.on_change=resume" in refused.error
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # untouched

    # Unchanged but for keys that do not change results: still the same finished run.
    same = execute_run(config("train.threads=2", "train.progress=true"), run, [])
    assert (
        same.status == "completed"
        and (run / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]
    )

    restarted = execute_run(config("train.lr=0.01", "run.on_change=restart"), run, [])
    assert restarted.status == "completed"
    stale = list((run / ".stale").iterdir())
    assert len(stale) == 1 and (stale[0] / "checkpoint.pt").read_bytes() == before["checkpoint.pt"]
    assert "lr: 0.01" in (run / "config.yaml").read_text()

    resumed = execute_run(
        config("train.lr=0.01", "train.max_steps=8", "run.on_change=resume"), run, []
    )
    assert resumed.status == "completed" and resumed.step == 8
    history = json.loads((run / "identity.json").read_text())["history"]
    assert history[-1]["changes"] == ["train.max_steps: 6 -> 8"] and history[-1]["at_step"] == 6


def test_resume_of_a_finished_run_without_its_checkpoint_is_refused(tmp_path):
    """keep_checkpoint=final removes checkpoint.pt: extending that run would silently train
    from scratch, so it is refused and the finished run is left as it was."""
    run, final = tmp_path / "run", "train.keep_checkpoint=final"
    assert execute_run(config(final), run, []).status == "completed"
    assert not (run / "checkpoint.pt").exists() and (run / "weights.pt").exists()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    more = execute_run(config(final, "train.max_steps=8", "run.on_change=resume"), run, [])
    assert more.status == "failed" and more.recorded is False
    assert "run.on_change=restart" in more.error and "keep_checkpoint=last" in more.error
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_sweep_reruns_a_changed_run_and_skips_an_unchanged_one(tmp_path):
    run = tmp_path / "run"
    execute_run(config(), run, [], sweep=True)
    first = (run / "metrics.jsonl").read_bytes()
    assert execute_run(config(), run, [], sweep=True).status == "completed"
    assert (run / "metrics.jsonl").read_bytes() == first  # skipped
    assert execute_run(config("train.lr=0.01"), run, [], sweep=True).status == "completed"
    assert (run / "metrics.jsonl").read_bytes() != first  # rerun, the old one moved aside
    assert len(list((run / ".stale").iterdir())) == 1


# ======================================================== slow: real processes, killed


KILL_STEPS = ["train.max_steps=12", "train.checkpoint_interval=2", "train.eval_interval=4"]

# Runs python -m glmlab with a fault armed: FAULT=checkpoint:N kills the process (SIGKILL)
# halfway through its N-th checkpoint write, FAULT=metrics:N halfway through its N-th
# metrics.jsonl row; FAULT=sigint:N sends it SIGINT (Ctrl-C) right after its N-th row.
DRIVER = r"""
import os, signal, sys
import glmlab.io, glmlab.train.checkpoint as ck, glmlab.train.trainer as tr
what, n = os.environ["FAULT"].split(":")
count = [0]

def due():
    count[0] += 1
    return count[0] == int(n)

real_atomic, real_append = glmlab.io.atomic_write, glmlab.io.append_line

def atomic_write(path, write):
    if what == "checkpoint" and str(path).endswith("checkpoint.pt") and due():
        def torn(f):
            f.write(b"PK\x03\x04 half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_atomic(path, torn)
    return real_atomic(path, write)

def append_line(path, line):
    if what == "sigint" and due():  # Ctrl-C, delivered right after the N-th row
        real_append(path, line)
        os.kill(os.getpid(), signal.SIGINT)
        return None
    if what == "metrics" and due():
        with open(path, "a") as f:
            f.write(line[: len(line) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_append(path, line)

ck.atomic_write = atomic_write
tr.append_line = append_line
sys.argv = ["glmlab", *sys.argv[1:]]
import runpy  # as python -m glmlab runs: its argv preparation (the scale) and exit status
runpy.run_module("glmlab", run_name="__main__", alter_sys=True)
"""


def _glmlab_faulty(args: list[str], cwd: Path, fault: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "FAULT": fault, "HYDRA_FULL_ERROR": "0"},
    )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """An uninterrupted run: what every interrupted one must end up equal to."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = run_glmlab([*FAST, *KILL_STEPS, "hydra.run.dir=run"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "run"


def assert_nothing_lost(run: Path, reference: Path) -> None:
    assert read_result(run).status == "completed"
    assert steps_of(run) == steps_of(reference)  # every row once, the same values
    a, b = load_checkpoint(run / "checkpoint.pt"), load_checkpoint(reference / "checkpoint.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert temps(run) == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["checkpoint:1", "checkpoint:3", "metrics:2", "metrics:5"])
def test_kill_inside_a_write_loses_nothing(fault, tmp_path, reference_run):
    args = [*FAST, *KILL_STEPS, "hydra.run.dir=run"]
    killed = _glmlab_faulty(args, tmp_path, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / "run"
    assert (temps(run) != []) == fault.startswith("checkpoint")  # the killed write's leftover
    proc = run_glmlab(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_nothing_lost(run, reference_run)


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing(tmp_path, reference_run):
    rng = random.Random(9)
    cmd = [sys.executable, "-m", "glmlab", *FAST, *KILL_STEPS, "hydra.run.dir=run"]
    for _ in range(3):
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Past the imports and data preparation, somewhere in training or its writes.
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "metrics.jsonl").exists() and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = run_glmlab([*FAST, *KILL_STEPS, "hydra.run.dir=run"], cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert_nothing_lost(tmp_path / "run", reference_run)


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_step_and_exits_130(tmp_path, reference_run):
    args = [*FAST, *KILL_STEPS, "hydra.run.dir=run"]
    # Ctrl-C mid-run, at the same point on any machine: right after the 2nd metrics row.
    proc = _glmlab_faulty(args, tmp_path, "sigint:2")
    assert proc.returncode == 130, proc.stderr[-3000:]
    err = proc.stderr
    assert "Traceback" not in err and "interrupted (Ctrl-C) after step" in err
    step = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"]
    assert 0 < step < 12 and f"after step {step}," in err
    assert run_glmlab(args, cwd=tmp_path).returncode == 0
    assert_nothing_lost(tmp_path / "run", reference_run)


@pytest.mark.slow
def test_two_processes_on_one_directory_train_it_once(tmp_path, reference_run):
    cmd = [sys.executable, "-m", "glmlab", *FAST, *KILL_STEPS, "hydra.run.dir=run"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    both = "\n".join(outputs)
    assert both.count("already completed: skipped") == 1  # the other one waited, or came late
    assert_nothing_lost(tmp_path / "run", reference_run)


@pytest.mark.slow
def test_two_identical_sweeps_into_one_directory_train_every_run_once(tmp_path):
    cmd = [sys.executable, "-m", "glmlab", "-m", *FAST, "seed=0,1", "hydra.sweep.dir=sweep"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "\n".join(outputs).count("already completed: skipped") == 2  # each run once
    runs = [p.parent for p in (tmp_path / "sweep").glob("*/result.json")]
    assert len(runs) == 2
    for run in runs:
        steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
        assert steps == [2, 4, 6]  # no doubled rows


# ================================================== slow: bad input through the real CLI

# (arguments, exit status, stderr pattern): run in a fresh directory, nothing half-written.
TRAIN_CASES = [
    (["train.eval_batches=0"], 1, r"train\.eval_batches=0: must be an integer >= 1"),
    (["data.seq_len=0"], 1, r"data\.seq_len=0: must be an integer >= 16"),
    (["train.grad_accum=0"], 1, r"train\.grad_accum=0: must be"),
    (["train.max_steps=0"], 1, r"train\.max_steps=0: must be"),
    (["train.max_steps=lots"], 1, r"train\.max_steps=lots: must be an integer"),
    (["train.checkpoint_interval=0"], 1, r"train\.checkpoint_interval=0: must be"),
    (["train.log_interval=0"], 1, r"train\.log_interval=0: must be"),
    (["train.batch_size=0"], 1, r"train\.batch_size=0: must be"),
    (["data=jsonl", "data.corpus_options.path={bad_utf8}"], 1, r"bad\.jsonl:2: not valid UTF-8"),
    (["data=jsonl", "data.corpus_options.path={one_doc}"], 1, r"the validation split is empty"),
]


# Refused at config time (by the schema when Hydra composes the config, or by its value
# rules before anything is loaded): no run directory is left. The corpus cases fail later,
# in a claimed run directory, and record a failed result.json there.
REFUSED_AT_CONFIG_TIME = {c[0][-1] for c in TRAIN_CASES if not c[0][-1].startswith("data.corpus")}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad")
    (root / "bad.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    (root / "one.jsonl").write_text(json.dumps({"text": "only one document here " * 20}) + "\n")
    return {"bad_utf8": str(root / "bad.jsonl"), "one_doc": str(root / "one.jsonl")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "status", "pattern"), TRAIN_CASES, ids=[c[0][-1] for c in TRAIN_CASES]
)
def test_bad_input_to_a_run(args, status, pattern, bad_files, tmp_path):
    args = [a.format(**bad_files) for a in args]
    proc = run_glmlab([*FAST, *args, "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == status, proc.stderr
    import re

    assert re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    run = tmp_path / "run"
    if args[-1] in REFUSED_AT_CONFIG_TIME:  # a refused config leaves nothing behind
        assert not run.exists()
        return
    assert not (run / "checkpoint.pt").exists() and not (run / "metrics.jsonl").exists()
    assert read_result(run).status == "failed" and temps(run) == []


def _glmlab_tool(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "glmlab.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_bad_input_to_the_tools(tmp_path, reference_run):
    cases = [
        (
            ["inspect", "positional=nope"],
            r"positional=nope: no such positional; choose one of .*learned_2d",
        ),
        (["inspect", "train.max_steps=lots"], r"train\.max_steps=lots: must be an integer"),
        (
            [
                "infill",
                "--checkpoint",
                str(reference_run),
                "--text",
                "a [MASK] b",
                "--top-k",
                "99999",
            ],
            r"--top-k 99999: must be an integer from 1 to \d+",
        ),
        (
            ["compare", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "file.txt")],
            r"is a file",
        ),
    ]
    (tmp_path / "file.txt").write_text("keep me")
    for args, pattern in cases:
        proc = _glmlab_tool(args, tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        import re

        assert re.search(pattern, proc.stderr), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert (tmp_path / "file.txt").read_text() == "keep me"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((reference_run / "config.yaml").read_text())
    _damaged("truncated", broken / "checkpoint.pt")
    proc = _glmlab_tool(["infill", "--checkpoint", str(broken), "--text", "a [MASK] b"], tmp_path)
    assert proc.returncode == 2 and "cannot load checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr and "weights_only" not in proc.stderr
    (broken / "config.yaml").write_text("{{{ not yaml")
    proc = _glmlab_tool(["infill", "--checkpoint", str(broken), "--text", "a [MASK] b"], tmp_path)
    assert proc.returncode == 2 and f"unreadable {broken / 'config.yaml'}" in proc.stderr


@pytest.mark.slow
def test_sweep_exit_status_and_last_line(tmp_path):
    failing = run_glmlab(
        ["-m", *FAST, "train.max_steps=0,-1", "hydra.sweep.dir=all_failed"], cwd=tmp_path
    )
    assert failing.returncode == 1, failing.stderr
    assert (
        failing.stdout.strip()
        .splitlines()[-1]
        .endswith("2 runs: 0 completed, 0 diverged, 2 failed")
    )
    assert (tmp_path / "all_failed" / "report.md").exists()
    mixed = run_glmlab(
        ["-m", *FAST, "train.lr=0.003,1e30", "train.grad_clip=1e30", "hydra.sweep.dir=ok"],
        cwd=tmp_path,
    )
    assert mixed.returncode == 0, mixed.stderr
    assert (
        mixed.stdout.strip().splitlines()[-1].endswith("2 runs: 1 completed, 1 diverged, 0 failed")
    )


# ================================ run directories: nothing written outside them, nothing
# of an old run left beside a new one, nothing rewritten by a run that is refused

READ_ONLY_DRIVER = r"""
import builtins, errno, io, os, runpy, sys
root = os.path.realpath(os.environ["READ_ONLY"])
def inside(path):
    try:
        return os.path.realpath(os.fspath(path)).startswith(root + os.sep)
    except TypeError:
        return False
def denied(path):
    return PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
def guarded_open(file, mode="r", *a, **k):
    if any(c in mode for c in "wax+") and inside(file):
        raise denied(file)
    return real_open(file, mode, *a, **k)
def guarded_os_open(path, flags, *a, **k):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
        raise denied(path)
    return real_os_open(path, flags, *a, **k)
def guarded_mkdir(path, *a, **k):
    if inside(path) and not os.path.exists(path):
        raise denied(path)
    return real_mkdir(path, *a, **k)
builtins.open = io.open = guarded_open
os.open, os.mkdir = guarded_os_open, guarded_mkdir
sys.argv = ["glmlab", *sys.argv[1:]]
runpy.run_module("glmlab", run_name="__main__")
"""


def files_of(run: Path) -> dict[str, bytes]:
    """Every file under a run directory (Hydra's records and .stale/ included), by path; not
    the lock file, which every process that takes the lock writes its pid into."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize("name", ["../escape", "../../x", "a/../../b", "/abs/x", "~/x", ""])
def test_a_name_outside_runs_or_sweeps_is_refused(name):
    from glmlab.runs.naming import contained_name

    with pytest.raises(
        ConfigError, match=r"must be a folder name inside runs/ .* nothing was written"
    ):
        contained_name(name)
    assert contained_name("group/experiment") == "group/experiment"  # a subfolder is inside


@pytest.mark.slow
def test_a_name_outside_its_root_writes_nothing_anywhere(tmp_path):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    for args in (["name=../../escape"], ["name=../../escape", "-m"], ["name=/abs/x"]):
        proc = run_glmlab([*FAST, *args], cwd=cwd)
        assert proc.returncode == 1, proc.stderr
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and "must be a folder name inside runs/" in err[0], proc.stderr
        assert "nothing was written" in err[0] and "hydra.run.dir" in err[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]  # nothing, anywhere


def test_restart_moves_everything_of_the_old_run_together(tmp_path):
    run = tmp_path / "run"
    suite = ["train.eval_suite=true", "train.keep_checkpoint=final"]
    assert execute_run(config(*suite), run, []).status == "completed"
    old = files_of(run)
    assert {"weights.pt", "eval_items.json", "result.json", "config.yaml", "app.log"} <= set(old)

    restarted = execute_run(config(*suite, "train.lr=0.01", "run.on_change=restart"), run, [])
    assert restarted.status == "completed"
    (stale,) = (run / ".stale").iterdir()
    # Every file of the old run is in .stale/, unchanged; nothing of it stayed beside the new one.
    assert files_of(stale) == old
    new = {k: v for k, v in files_of(run).items() if not k.startswith(".stale/")}
    assert set(new) == set(old)  # the new run wrote its own of each
    assert new["weights.pt"] != old["weights.pt"] and "lr: 0.01" in new["config.yaml"].decode()
    assert b"old run is moved to" not in old["app.log"]  # each log holds its own run


def test_incompatible_resume_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    last = "train.keep_checkpoint=last"
    assert execute_run(config(last), run, []).status == "completed"
    before = files_of(run)

    wider = execute_run(config(last, "model.dim=64", "run.on_change=resume"), run, [])
    assert wider.status == "failed" and wider.recorded is False
    error = wider.error
    assert "\n" not in error and "model.dim: 32 -> 64" in error and "nothing was written" in error
    assert "run.on_change=restart" in error and "size mismatch" not in error
    assert files_of(run) == before  # config, identity history, metrics, checkpoint: as they were

    # The original config is still this run's: no false "made with another config".
    again = execute_run(config(last), run, [])
    assert again.status == "completed" and again.error is None
    assert files_of(run) == before


@pytest.mark.slow
def test_refused_change_leaves_the_run_and_hydras_records_untouched(tmp_path):
    assert run_glmlab([*FAST, "hydra.run.dir=run"], cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    before = files_of(run)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "app.log"} <= set(before)
    proc = run_glmlab([*FAST, "train.lr=0.01", "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 1 and "run.on_change=restart" in proc.stderr
    assert files_of(run) == before  # .hydra/ (how sweeps find runs) and app.log too


@pytest.mark.slow
def test_read_only_run_directory_is_one_clear_failure(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", READ_ONLY_DRIVER, *FAST, "hydra.run.dir=run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "READ_ONLY": str(run)},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("glmlab: run failed:") and "Permission denied" in last, proc.stderr
    assert list(run.iterdir()) == []


def test_unwritable_tracker_folder_is_one_clear_error(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    from glmlab.plugin.base import TrackerRun, TrackerUnavailable
    from glmlab.plugins.trackers import TensorBoardTracker

    (tmp_path / "tensorboard").write_text("a file where the tracker's folder goes")
    tracker = TensorBoardTracker()
    run = TrackerRun(run_dir=tmp_path, experiment="e", name="r", variant="", config={})
    with pytest.raises(TrackerUnavailable, match=r"tensorboard: cannot write to .*tensorboard"):
        tracker.start(run)
    assert tracker.writer is None  # no writer thread was started to fail later


def test_tracker_that_cannot_write_fails_the_run_in_one_line(tmp_path, monkeypatch):
    pytest.importorskip("torch.utils.tensorboard")
    import tempfile as tempfile_module

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile_module, "TemporaryFile", denied)
    result = execute_run(config("tracker=tensorboard"), tmp_path / "run", [])
    assert result.status == "failed" and "\n" not in result.error
    assert "tensorboard: cannot write to" in result.error and "Permission denied" in result.error


def test_results_of_a_sweep_without_metrics_is_an_error_not_invalid_latex(tmp_path, capsys):
    from glmlab.cli.main import main as cli

    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "result.json").write_text("garbage{")
    assert cli(["results", str(tmp_path), "--format", "latex"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "\\begin{tabular}" not in err
    assert err.startswith("glmlab: no metric to tabulate") and "failed" in err
    assert cli(["results", str(tmp_path), "--format", "csv"]) == 0  # the rows still list it


def test_missing_results_directory_is_named(tmp_path, capsys):
    from glmlab.cli.main import main as cli

    assert cli(["results", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such sweep directory" in err and "Errno" not in err
    (tmp_path / "file").write_text("x")
    assert cli(["results", str(tmp_path / "file")]) == 2
    assert "(it is a file)" in capsys.readouterr().err


def test_empty_or_directory_jsonl_path_says_so(tmp_path):
    from glmlab.data.corpus import load_corpus

    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"jsonl: '{empty}' is empty \(0 bytes\)"):
        load_corpus("jsonl", path=str(empty))
    with pytest.raises(ValueError, match=rf"jsonl: '{tmp_path}' is a directory"):
        load_corpus("jsonl", path=str(tmp_path))
