"""A sweep with a harness task in its config: the report shows the task's metrics with
paired intervals and the chance level, ``glmlab results`` has their columns, and more tasks
are added to the finished sweep without retraining (by ``glmlab harness`` and by a rerun)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from glmlab.cli.main import main as cli
from glmlab.runs.layout import HARNESS_ITEMS
from tests.conftest import TINY, run_glmlab
from tests.harness_tasks import write_tasks


def fingerprints(sweep: Path) -> dict[str, str]:
    """Every file that training writes (weights, metrics, results), by content."""
    files = [
        *sweep.glob("*/weights.pt"),
        *sweep.glob("*/metrics.jsonl"),
        *sweep.glob("*/result.json"),
    ]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def section(report: str, title: str) -> str:
    """The report's section under heading ``### title``, up to the next heading."""
    start = report.index(f"### {title}")
    end = report.find("\n#", start + 1)
    return report[start : end if end > 0 else None]


@pytest.mark.slow
def test_harness_metrics_in_a_sweep_and_added_after_the_fact(tmp_path, capsys):
    tasks = write_tasks(tmp_path / "tasks")
    args = [
        "-m",
        *TINY,
        "name=hs",
        "train.max_steps=12",
        "train.eval_suite=false",
        "model.tie_embeddings=true,false",
        "seed=0,1",
        "harness.tasks=[tiny_mc]",
        f"harness.include_path={tasks}",
        "report.baseline='model.tie_embeddings=true'",
        "report.metric=[tiny_mc/prob]",
    ]
    proc = run_glmlab(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sweeps" / "hs"
    report = (sweep / "report.md").read_text()
    prob = section(report, "tiny_mc correct-answer probability (higher is better)")
    assert "95% intervals over seeds and items (paired by seed" in prob
    assert "| model.tie_embeddings=false |" in prob and "*reference: chance*" in prob
    assert "tiny_mc accuracy" in report

    assert cli(["results", str(sweep)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4 and all(0 < float(r["tiny_mc/prob"]) < 1 for r in rows)

    before = fingerprints(sweep)
    assert len([p for p in before if p.endswith("weights.pt")]) == 4
    assert cli(["harness", str(sweep), "--tasks", "tiny_cloze", "--include-path", str(tasks)]) == 0
    assert fingerprints(sweep) == before  # scored, never retrained
    assert not list(sweep.glob("*/checkpoint.pt"))
    for items in sweep.glob(f"*/{HARNESS_ITEMS}"):
        scored = json.loads(items.read_text())["scored"]
        assert set(scored) == {"tiny_mc", "tiny_cloze"}
    report = (sweep / "report.md").read_text()
    assert "95% intervals over seeds and items" in section(
        report, "tiny_cloze correct-answer probability (higher is better)"
    )
    assert "tiny_cloze/answer_loss" in (sweep / "results.csv").read_text().splitlines()[0]

    # Rerunning the finished sweep with one more task scores it and trains nothing.
    more = [a.replace("[tiny_mc]", "[tiny_mc,tiny_ppl]") for a in args]
    proc = run_glmlab(more, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count("already completed: skipped") == 4
    assert fingerprints(sweep) == before
    report = (sweep / "report.md").read_text()
    assert "### tiny_ppl loss per word (lower is better)" in report
