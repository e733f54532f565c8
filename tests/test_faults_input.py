"""Fault injection for what users hand glmlab (docs/RELIABILITY.md): text files in an
encoding they did not say, overrides Hydra cannot parse, and torn or odd result.json
files under ``glmlab status`` and ``glmlab collect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import HydraException

from glmlab.cli.collect import collect
from glmlab.cli.main import main as cli_main
from glmlab.cluster.status import render_status, sweep_runs
from glmlab.config.errors import composition_error_line
from glmlab.data.corpus import load_corpus
from glmlab.runs.result import RunResult, write_result

# ---------------------------------------------------------------- text_files encoding

UTF8_TEXT = "Déjà vu, naïve café.\n\nA second paragraph, in UTF-8: ½ ✓.\n"
LATIN1_TEXT = "First line.\nLe café était très bon.\n"  # 'é' at column 7 of line 2


def _corpus(folder: Path, latin1: bool) -> Path:
    folder.mkdir()
    for i in range(3):
        (folder / f"a{i}.txt").write_bytes(f"{UTF8_TEXT}file {i}\n".encode())
    if latin1:
        (folder / "b.txt").write_bytes(LATIN1_TEXT.encode("latin-1"))
    return folder


def test_latin1_file_among_utf8_ones_is_refused_naming_file_line_and_column(tmp_path):
    folder = _corpus(tmp_path / "texts", latin1=True)
    bad = folder / "b.txt"
    with pytest.raises(ValueError) as err:
        load_corpus("text_files", pattern=str(folder / "*.txt"))
    text = str(err.value)
    assert text.startswith(f"{bad}:2: not valid utf-8 (byte 0xe9 at column 7)"), text
    assert "data.corpus_options.encoding" in text and "\n" not in text


def test_utf8_files_read_as_before_and_nothing_is_replaced(tmp_path):
    folder = _corpus(tmp_path / "texts", latin1=False)
    (folder / "crlf.txt").write_bytes("Windows line\r\nends: ça.\r\n".encode())
    corpus = load_corpus("text_files", pattern=str(folder / "*.txt"), unit="file")
    docs = corpus.train + corpus.validation + corpus.test
    assert len(docs) == 4 and not any("\ufffd" in d for d in docs)
    assert "Windows line\nends: ça." in docs  # universal newlines, as reading text does


def test_the_encoding_the_user_sets_decodes_the_files(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(3):
        (folder / f"b{i}.txt").write_bytes(f"{LATIN1_TEXT}n° {i}\n".encode("latin-1"))
    corpus = load_corpus("text_files", pattern=str(folder / "*.txt"), encoding="latin-1")
    docs = corpus.train + corpus.validation + corpus.test
    assert len(docs) == 3 and all("Le café était très bon." in d for d in docs)
    default = load_corpus("text_files", pattern=str(_corpus(tmp_path / "u", latin1=False) / "*"))
    explicit = load_corpus("text_files", pattern=str(tmp_path / "u" / "*"), encoding="utf-8")
    assert default == explicit  # the default spelled out is the same corpus (and cache key)


@pytest.mark.parametrize("encoding", ["nope", "base64", 5])
def test_unknown_encoding_is_refused_before_any_file_is_read(encoding, tmp_path, monkeypatch):
    folder = _corpus(tmp_path / "texts", latin1=False)

    def no_read(*args, **kwargs):
        raise AssertionError("a file was read before the encoding was checked")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    with pytest.raises(ValueError, match=r"data\.corpus_options\.encoding=.*not a text encoding"):
        load_corpus("text_files", pattern=str(folder / "*.txt"), encoding=encoding)


# --------------------------------------------------------- overrides Hydra cannot parse

UNQUOTED = [
    ("train.lr=1e-3=2", """'train.lr="1e-3=2"'"""),
    ("+report.baseline=a=b", """'+report.baseline="a=b"'"""),
]


@pytest.mark.parametrize(("override", "quoted"), UNQUOTED, ids=[o for o, _ in UNQUOTED])
def test_unparsable_override_is_named_with_how_to_quote_it(override, quoted):
    with (
        pytest.raises(HydraException) as err,
        initialize_config_module("glmlab.conf", version_base="1.3"),
    ):
        compose("config", overrides=[override])
    line = composition_error_line(err.value)
    assert line.startswith(f"override '{override}': ") and quoted in line, line
    assert "None" not in line and "\n" not in line


def test_quoted_value_with_an_equals_sign_is_read_as_one_value():
    with (
        pytest.raises(HydraException) as err,
        initialize_config_module("glmlab.conf", version_base="1.3"),
    ):
        compose("config", overrides=["train.lr='1e-3=2'"])
    assert composition_error_line(err.value) == "train.lr=1e-3=2: must be a number > 0"


def test_unparsable_override_of_a_tool_is_one_line(capsys):
    assert cli_main(["inspect", "data.seq_len=64", "train.lr=1e-3=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glmlab: override 'train.lr=1e-3=2': ") and err.count("\n") == 1


def test_other_parse_errors_name_the_override():
    with (
        pytest.raises(HydraException) as err,
        initialize_config_module("glmlab.conf", version_base="1.3"),
    ):
        compose("config", overrides=["train.lr=[1,"])
    line = composition_error_line(err.value)
    assert line.startswith("override 'train.lr=[1,': ") and "; None" not in line, line


# ------------------------------------------------- status and collect on odd result.json

ODD_RESULTS = {
    "not_json": b"\x00\xff{not: [json",
    "truncated": b'{"status": "compl',
    "status_5": b'{"status": 5}',
    "a_list": b'["completed"]',
    "no_status": b'{"step": 4, "final_val_loss": 5.0}',
    "empty": b"",
    "odd_fields": b'{"status": "failed", "slurm_job": "x", "error": 3}',
}


def _sweep_with_odd_results(root: Path) -> Path:
    sweep = root / "sweep"
    for name in ("good_a", "good_b"):
        run = sweep / name
        run.mkdir(parents=True)
        write_result(
            run, RunResult(status="completed", step=4, final_val_loss=5.0, variant=[f"x={name}"])
        )
        (run / "metrics.jsonl").write_text('{"step": 4, "loss": 6.0}\n')
    for name, content in ODD_RESULTS.items():
        run = sweep / name
        run.mkdir()
        (run / "result.json").write_bytes(content)
        (run / "metrics.jsonl").write_text('{"step": 2, "loss": 6.5}\n')
    return sweep


def no_slurm(job_ids: list[str]) -> dict:
    return {}


def test_status_names_each_unreadable_result_and_shows_every_run(tmp_path):
    sweep = _sweep_with_odd_results(tmp_path)
    (sweep / "odd_logs").mkdir()
    (sweep / "odd_logs" / "result.json").write_text('{"status": "stopped", "job_logs": 7}')
    views = {v.name: v for v in sweep_runs(sweep, query=no_slurm)}
    assert views.pop("odd_logs").state == "stopped"
    assert views["good_a"].state == views["good_b"].state == "completed"
    for name in ODD_RESULTS:
        if name == "odd_fields":  # a readable result whose extra fields are not what we wrote
            assert views[name].state == "failed" and views[name].detail == "3"
            continue
        assert views[name].state == "failed", name
        assert f"unreadable {sweep / name / 'result.json'}" in views[name].detail, name
    text = render_status(list(views.values()))
    assert text.count("unreadable") == len(ODD_RESULTS) - 1
    assert text.splitlines()[-1] == f"2 completed, {len(ODD_RESULTS)} failed of 9"


def test_status_and_collect_commands_go_on_past_odd_results(tmp_path, capsys, monkeypatch):
    import glmlab.cluster.status

    monkeypatch.setattr(glmlab.cluster.status, "query_jobs", no_slurm)
    sweep = _sweep_with_odd_results(tmp_path)
    assert cli_main(["status", str(sweep)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    for name in ODD_RESULTS:
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert str(sweep / "status_5" / "result.json") in out
    assert cli_main(["collect", str(sweep)]) == 1  # not every run completed
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and str(sweep / "report.md") in out
    assert str(sweep / "a_list" / "result.json") in out
    done = collect(sweep, query=no_slurm)
    assert sorted(v.state for v in done.runs).count("completed") == 2
    assert json.loads((sweep / "good_a" / "result.json").read_text())["status"] == "completed"


def test_status_skips_metrics_rows_it_cannot_read(tmp_path):
    from glmlab.cluster.status import last_progress

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2, "loss": 6.5}\n{"step": "x", "loss": null}\n[4]\n{"step": 3}\n')
    progress = last_progress(path)
    assert (progress.step, progress.loss) == (2, 6.5)
