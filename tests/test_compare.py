"""``glmlab compare``: shared variants and metrics side by side, differences marked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from glmlab.report.compare import DIFFERENT_VERDICT, compare_sweeps
from tests.browser import CHROMIUM, page_layout
from tests.conftest import run_glmlab
from tests.test_report import BASE, OFF, TINY_SWEEP, write_run


def synthetic(sweep: Path, off_values: list[float], dim: int, extra: str | None = None) -> Path:
    for seed, val in enumerate([5.0, 5.2, 5.4]):
        write_run(sweep, f"on{seed}", BASE, seed, val=val, cloze=0.3)
    for seed, val in enumerate(off_values):
        write_run(sweep, f"off{seed}", OFF, seed, val=val, cloze=0.3)
    if extra:
        write_run(sweep, "extra0", extra, 0, val=5.0, cloze=0.3)
    for run in sweep.iterdir():
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "model": {"dim": dim}}))
    report = {"baseline": BASE, "metric": ["final_val_loss", "infill_token_loss"]}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"report": report}))
    return sweep


def test_compare_marks_changes_and_differing_verdicts(tmp_path):
    cpu = synthetic(tmp_path / "cpu" / "abl", [5.1, 5.15, 5.55], dim=128)
    # On the "GPU" the variant is much worse: a significant change and a different verdict.
    gpu = synthetic(tmp_path / "gpu" / "abl", [7.0, 7.1, 7.2], dim=768, extra="objective.x=1")
    md = compare_sweeps([cpu, gpu], tmp_path / "out").read_text()
    assert "# Comparison: cpu/abl vs gpu/abl" in md  # same folder name: parents added
    assert "| model.dim | 128 | 768 |" in md
    assert "objective.shuffle_spans |" not in md  # the swept key is not a setting difference
    # The token infilling loss (validation loss + 1 in these runs), a verdict metric: each
    # sweep's cell is its report's interval and verdict, the change is paired by seed.
    row = next(line for line in md.splitlines() if line.startswith(f"| {OFF} | 6.2667"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # variant, cpu, cpu vs baseline, gpu, gpu vs baseline, change gpu - cpu, marker
    cpu_off, gpu_off = [6.1, 6.15, 6.55], [8.0, 8.1, 8.2]
    low, high = sps.t.interval(0.95, 2, loc=np.mean(cpu_off), scale=sps.sem(cpu_off))
    assert cells[1] == f"6.2667 [{low:.4f}, {high:.4f}] (n=3)"
    assert cells[2].startswith("inconclusive: +0.0667 [")
    assert cells[3].startswith("8.1000 [") and cells[4].startswith("worse: +1.9000 [")
    change = sps.ttest_rel(gpu_off, cpu_off)
    assert cells[5].startswith("**+1.8333 [") and cells[5].endswith(f"p = {change.pvalue:.3g}**")
    assert cells[6] == DIFFERENT_VERDICT
    val_row = next(line for line in md.splitlines() if line.startswith(f"| {OFF} | 5.2667"))
    # Not tested between objectives: the report says so.
    assert val_row.split("|")[3].strip().startswith("not tested: the variants train different")
    base_row = next(line for line in md.splitlines() if line.startswith(f"| {BASE} | 5.2000 ["))
    assert "baseline" in base_row and DIFFERENT_VERDICT not in base_row
    assert "- objective.x=1: only in gpu/abl" in md
    assert "<table>" in (tmp_path / "out" / "compare.html").read_text()


def test_compare_without_shared_variants_says_so(tmp_path):
    a = synthetic(tmp_path / "a" / "one", [5.1, 5.3, 5.5], dim=128)
    b = tmp_path / "b" / "two"
    for seed in range(2):
        write_run(b, f"x{seed}", "objective.x=1", seed, val=5.0, cloze=0.3)
        write_run(b, f"y{seed}", "objective.x=2", seed, val=5.1, cloze=0.3)
    md = compare_sweeps([a, b], tmp_path / "out").read_text()
    assert "Nothing to put side by side: the sweeps share no variant" in md
    assert "### " not in md  # no header-only metric tables
    assert f"- {OFF}: only in one" in md and "- objective.x=2: only in two" in md


def test_compare_overlays_curves_and_states_settings(tmp_path):
    cpu = synthetic(tmp_path / "cpu" / "abl", [5.1, 5.15, 5.55], dim=128)
    gpu = synthetic(tmp_path / "gpu" / "abl", [7.0, 7.1, 7.2], dim=768)
    md = compare_sweeps([cpu, gpu], tmp_path / "out").read_text()
    assert "![loss curves](compare_curves.png)" in md
    assert (tmp_path / "out" / "compare_curves.png").stat().st_size > 10_000
    assert "data:image/png;base64," in (tmp_path / "out" / "compare.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_compare_html_shows_every_column_at_1200px(tmp_path):
    sweeps = []
    for name in ("cpu", "gpu", "gpu2"):
        sweeps.append(synthetic(tmp_path / name / "abl", [5.1, 5.3, 5.5], dim=128))
    compare_sweeps(sweeps, tmp_path / "out")
    layout = page_layout(tmp_path / "out" / "compare.html", tmp_path)
    assert layout["width"] <= 1200
    assert layout["overflowing"] == [] and layout["scroll"] <= layout["width"], layout


def test_compare_needs_two_sweeps(tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        compare_sweeps([tmp_path], tmp_path / "out")


@pytest.mark.slow
def test_compare_two_real_sweeps(tmp_path):
    common = [*TINY_SWEEP, "seed=0,1"]
    common += ["objective.shuffle_spans=true,false", f"report.baseline='{BASE}'"]
    assert run_glmlab(["-m", *common, "name=before"], cwd=tmp_path).returncode == 0
    proc = run_glmlab(["-m", *common, "name=after", "model.dim=48"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sweeps = tmp_path / "sweeps"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmlab.cli",
            "compare",
            str(sweeps / "before"),
            str(sweeps / "after"),
            "--out",
            str(tmp_path / "cmp"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "# Comparison: before vs after" in md
    assert "| model.dim | 32 | 48 |" in md
    for label in (BASE, OFF):
        assert any(line.startswith(f"| {label} | ") and "(n=2)" in line for line in md.splitlines())
    for section in ("### validation loss", "### token infilling loss", "### cloze accuracy"):
        assert section in md
    results = [json.loads(p.read_text()) for p in (sweeps / "after").glob("*/result.json")]
    assert {r["status"] for r in results} == {"completed"}
    assert (tmp_path / "cmp" / "compare.html").exists()


def test_compare_default_folder_is_inside_the_ignored_sweeps_folder():
    from glmlab.report.compare import default_compare_dir

    out = default_compare_dir(["sweeps/posenc_ablation", "sweeps/posenc_ablation_gpu"])
    assert out.as_posix() == "sweeps/compare/posenc_ablation_vs_posenc_ablation_gpu"
