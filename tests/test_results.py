"""Results as tables: rows per run, pandas DataFrames, csv/json/parquet/markdown/LaTeX."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml
from scipy import stats as sps

from glmlab import results
from glmlab.cli.main import main as cli
from glmlab.report import build_report
from glmlab.report.stats import summary_stats

BASE, OFF = "positional=learned_2d", "positional=rope"


def write_run(
    sweep: Path, name: str, variant: str, seed: int, status: str = "completed", **values: float
) -> None:
    run = sweep / name
    run.mkdir(parents=True)
    result = {
        "status": status,
        "seed": seed,
        "step": 20,
        "variant": [variant, "model.dim=32"],  # a fixed override: not a column
        "final_val_loss": values.get("val"),
        "tokens_per_s": 1000.0 + seed,
        "attention": "sdpa",
        "run_dir": str(run),
        "error": None if status == "completed" else "boom",
        "provenance": {"glmlab": {"version": "0.1.0"}, "torch": {"version": "2.x"}},
    }
    if status == "completed":
        result["eval"] = {"cloze_acc": values["cloze"], "peak_mem_mb": 12.5}
    (run / "result.json").write_text(json.dumps(result))
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for seed, (val, cloze) in enumerate([(5.0, 0.30), (5.1, 0.31), (5.2, 0.32)]):
        write_run(root, f"b{seed}", BASE, seed, val=val, cloze=cloze)
    for seed, (val, cloze) in enumerate([(5.65, 0.50), (5.65, 0.52), (5.8, 0.51)]):
        write_run(root, f"r{seed}", OFF, seed, val=val, cloze=cloze)
    write_run(root, "r9", OFF, 9, status="failed")
    (root / "multirun.yaml").write_text(yaml.safe_dump({"report": {"baseline": BASE}}))
    return root


def test_rows_one_per_run_with_variant_keys_metrics_and_provenance(sweep: Path) -> None:
    rows = results.sweep_rows(sweep)
    assert len(rows) == 7
    assert all(list(r) == list(rows[0]) for r in rows)  # one set of columns
    by_run = {r["run"]: r for r in rows}
    b1 = by_run["b1"]
    assert b1["positional"] == "learned_2d" and "model.dim" not in b1
    assert b1["seed"] == 1 and b1["status"] == "completed" and b1["step"] == 20
    assert b1["final_val_loss"] == 5.1 and b1["cloze_acc"] == 0.31 and b1["peak_mem_mb"] == 12.5
    assert b1["tokens_per_s"] == 1001.0 and b1["attention"] == "sdpa"
    assert b1["run_dir"] == str(sweep / "b1")
    assert b1["prov.glmlab.version"] == "0.1.0"
    failed = by_run["r9"]
    assert failed["status"] == "failed" and failed["final_val_loss"] is None
    assert failed["error"] == "boom"


def test_load_sweep_is_a_dataframe(sweep: Path) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is the glmlab[results] extra")
    df = results.load_sweep(sweep)
    assert isinstance(df, pd.DataFrame) and len(df) == 7
    means = df[df.status == "completed"].groupby("positional")["final_val_loss"].mean()
    assert means["rope"] == pytest.approx(5.7) and means["learned_2d"] == pytest.approx(5.1)


def test_load_sweep_without_pandas_names_the_extra(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(results.MissingExtraError, match=r"glmlab\[results\]"):
        results.load_sweep(sweep)
    assert cli(["results", str(sweep), "--format", "parquet", "--out", "x.parquet"]) == 2


def test_cli_csv_json_markdown(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["results", str(sweep)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 7 and {r["positional"] for r in rows} == {"learned_2d", "rope"}
    assert cli(["results", str(sweep), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(
        json.dumps(results.sweep_rows(sweep), default=str)
    )
    assert cli(["results", str(sweep), "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| run | variant | positional | seed | status |")
    assert len(md) == 2 + 7


def test_parquet_round_trip(sweep: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is the glmlab[results] extra")
    pytest.importorskip("pyarrow", reason="pyarrow is the glmlab[results] extra")
    out = tmp_path / "runs.parquet"
    assert cli(["results", str(sweep), "--format", "parquet", "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 7 and set(df.positional) == {"learned_2d", "rope"}
    assert df.final_val_loss.max() == pytest.approx(5.8)


def test_latex_booktabs_mean_ci_and_significance(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.tex"
    assert cli(["results", str(sweep), "--format", "latex", "--out", str(out)]) == 0
    tex = out.read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    lines = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    base_vals, rope_vals = [5.0, 5.1, 5.2], [5.65, 5.65, 5.8]
    # The report's interval (a t over seeds: these runs saved no per-item scores) and its
    # test: paired by seed, Holm-adjusted with the equivalence test (2 tests).
    half = (summary_stats(rope_vals).ci[1] - summary_stats(rope_vals).ci[0]) / 2
    assert 2 * sps.ttest_rel(rope_vals, base_vals).pvalue < 0.05
    rope = lines["positional=rope"]
    assert rf"\textbf{{{statistics.fmean(rope_vals):.4f} $\pm$ {half:.4f}}}$^\dagger$" in rope
    base = lines["positional=learned\\_2d (baseline)"]
    assert r"\dagger" not in base and "5.1000 $\\pm$" in base
    # Columns: the metrics the report shows, with their direction.
    header = lines["Variant"]
    assert "validation loss$\\downarrow$" in header and "cloze accuracy$\\uparrow$" in header
    # Only the report's verdict metrics are tested: no mark on cloze accuracy.
    assert rope.count(r"\dagger") == 1 and "Holm" in tex


def test_latex_no_mark_without_significance(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for seed, val in enumerate([5.0, 5.4, 5.2]):
        write_run(root, f"b{seed}", BASE, seed, val=val, cloze=0.3)
    for seed, val in enumerate([5.1, 5.3, 5.25]):
        write_run(root, f"r{seed}", OFF, seed, val=val, cloze=0.3 + seed / 100)
    (root / "multirun.yaml").write_text(yaml.safe_dump({"report": {"baseline": BASE}}))
    tex = results.render(root, "latex")
    assert tex is not None and r"\dagger$" not in tex.split(r"\midrule")[1]


def test_report_writes_the_same_rows_as_csv(sweep: Path) -> None:
    build_report(sweep)
    with open(sweep / "results.csv", newline="") as f:
        written = list(csv.DictReader(f))
    rows = results.sweep_rows(sweep)
    assert [r["run"] for r in written] == [r["run"] for r in rows]
    got = {r["run"]: r["final_val_loss"] for r in written}
    for r in rows:
        v = r["final_val_loss"]
        assert (got[r["run"]] == "") if v is None else math.isclose(float(got[r["run"]]), v)


def test_unknown_format_is_an_error(sweep: Path) -> None:
    with pytest.raises(ValueError, match="unknown results format 'xlsx'"):
        results.render(sweep, "xlsx")
