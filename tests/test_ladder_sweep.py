"""The ladder end to end: `python -m glmlab +experiment=span_shuffle_ablation +ladder=cpu -m`
on a tiny ladder (seconds per run, side by side under glmlab's local launcher), its
report with every section, the lr choice read back from the grid runs, a rerun that finds
every run finished, and a bad ladder file refused before any run directory exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmlab.runs.result import read_result
from glmlab.testing import run_glmlab

pytestmark = pytest.mark.slow

# TINY_OVERRIDES without the keys the ladder sets per rung (model shape, max_steps), and
# without train.progress=false: the local launcher adds it to each job when runs go side by
# side, and the report must still match those runs to the plan's variants.
TINY_LADDER = [
    "data=stdlib_docs",  # the CPU ladder's installed_docs takes minutes to prepare
    "data.vocab_size=512",
    "data.n_sentinels=16",
    "data.seq_len=64",
    "train.batch_size=4",
    "train.warmup_steps=2",
    "train.eval_interval=3",
    "train.eval_batches=2",
    "train.log_interval=2",
    "train.checkpoint_interval=3",
    "train.eval_suite_items=8",
    "train.cloze_items=8",
    "train.threads=1",
    # the 4th rung grows depth, and is held out: predicted from the 3 smaller ones
    "hydra.sweeper.ladder.rungs=[{n_layers:1,dim:16,n_heads:2},{n_layers:1,dim:24,n_heads:2},{n_layers:1,dim:32,n_heads:2},{n_layers:2,dim:32,n_heads:2}]",
    "hydra.sweeper.ladder.holdout=last",
    "hydra.sweeper.ladder.tokens_per_param=0.5",
    "hydra.sweeper.ladder.lr_grid=[1e-3,3e-3,1e-2]",
    "hydra.sweeper.ladder.bootstrap=40",
    "seed=0,1",
]
COMMAND = ["+experiment=span_shuffle_ablation", "+ladder=cpu", "-m", *TINY_LADDER]
SECTIONS = [
    "# Ladder report: span_shuffle_ablation",
    "## Ladder: verdicts across scale",
    "### Verdicts",
    "### Rungs and token rule",
    "### Learning-rate grid",
    "### Per-rung differences",
    "### Prediction check: rung 2x32 held out",
    "### Fitted trends: y = E + A C^-alpha",
    "### Metric against compute",
    "![metric against compute](ladder.png)",
]


def test_tiny_ladder_end_to_end(tmp_path, capsys):
    proc = run_glmlab(COMMAND, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = tmp_path / "sweeps" / "span_shuffle_ablation"
    runs = [d for d in sweep.iterdir() if (d / "result.json").exists()]
    assert len(runs) == 2 * 4 * 3 + 2 * 4 * 2  # grid on the tuning seed + seeds
    md = (sweep / "report.md").read_text()
    for section in SECTIONS:
        assert section in md, section
    assert (sweep / "ladder.png").stat().st_size > 0
    assert "Ladder: verdicts across scale" in (sweep / "report.html").read_text()
    for metric in ("token infilling loss", "cloze accuracy"):
        line = next(
            x
            for x in md.splitlines()
            if x.startswith(f"- {metric}, objective.shuffle_spans=false vs")
        )
        # One of the verdict path's categories (glmlab/report/verdicts.py), then the gap.
        call = line.split(": ", 1)[1]
        categories = ("better", "worse", "crosses", "equivalent", "inconclusive", "trade-off")
        if metric == "cloze accuracy":  # 8 items at chance: every run may score the same
            categories += (
                "no comparison (fewer than 2 completed runs in an arm, or runs that do not vary)",
            )
        assert call.startswith(categories), call
        assert ("at C =" in line and "extrapolated" in line) or "no fit:" in line
    assert "ladder: token infilling loss, objective.shuffle_spans=false vs" in proc.stdout
    # Every grid point and seed run is matched to its arm: nothing reported missing.
    grid_table = md.split("### Learning-rate grid")[1].split("### Per-rung differences")[0]
    assert "missing" not in grid_table and "no completed seed runs" not in md
    section = md.split("## Every configuration of the ladder")[0]
    # every run matched: no rung lacks its runs (a cloze rung whose runs all score the same
    # says so: "runs that do not vary")
    assert "no completed seed runs" not in section and "**superseded**" not in section
    assert "prediction check at 2x32, token infilling loss" in proc.stdout

    # The choice: per arm, the parabola's minimum in log lr through the grid's best point
    # (or that point, at the grid's edge), and every seed run of the arm at that lr.
    plan = json.loads((sweep / "ladder.json").read_text())["plan"]
    grid: dict[tuple[str, str], dict[float, float]] = {}
    seeds: dict[tuple[str, str], set[float]] = {}
    for d in runs:
        res = read_result(d)
        values = dict(o.split("=", 1) for o in res.overrides)
        arm = (
            values["objective.shuffle_spans"].lower(),
            values["model.n_layers"],
            values["model.dim"],
        )
        if int(values["seed"]) == plan["tuning_seed"]:
            grid.setdefault(arm, {})[float(values["train.lr"])] = res.final_val_loss
        else:
            seeds.setdefault(arm, set()).add(float(values["train.lr"]))
        assert res.compute["flops"] > 0
    from glmlab.ladder.lr import GridPoint, choose_lr

    assert len(grid) == 8 and all(len(g) == 3 for g in grid.values())
    for arm, losses in grid.items():
        choice = choose_lr([GridPoint(lr, "completed", v) for lr, v in losses.items()], "fit")
        assert seeds[arm] == {choice.lr}, arm

    # Resumable: a rerun trains nothing and writes the same choices.
    again = run_glmlab(COMMAND, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "phase 1, 0 of 24 grid runs to run" in log
    assert "phase 2, 0 of 16 seed runs to run" in log
    assert json.loads((sweep / "ladder.json").read_text())["plan"]["chosen"] == plan["chosen"]

    # glmlab results: size, lr, params and FLOPs columns on every row.
    from glmlab.report.table import sweep_rows

    rows = sweep_rows(sweep)
    assert {"size", "lr", "params", "flops"} <= set(rows[0])
    assert {r["size"] for r in rows} == {"1x16", "1x24", "1x32", "2x32"}
    assert all(r["params"] and r["flops"] for r in rows)
    assert {r["ladder.role"] for r in rows} == {"tuning", "verdict"}
    from glmlab.cli.main import main as cli

    assert cli(["results", str(sweep), "--table", "ladder"]) == 0
    table = capsys.readouterr().out
    assert "held out" in table and "predicted_gap" in table.splitlines()[0]


@pytest.mark.parametrize(
    ("override", "fix"),
    [
        ("hydra.sweeper.ladder.lr_grid=[0.01]", "at least 3 distinct learning rates"),
        (
            "hydra.sweeper.ladder.rungs=[{n_layers:1,dim:32,n_heads:2},{n_layers:1,dim:24,n_heads:2},{n_layers:1,dim:48,n_heads:2},{n_layers:2,dim:48,n_heads:2}]",
            "list the rungs from smallest to largest",
        ),
        (
            "hydra.sweeper.ladder.rungs=[{n_layers:1,dim:16,n_heads:2},{n_layers:1,dim:24,n_heads:2},{n_layers:1,dim:32,n_heads:2}]",
            "ladder.holdout=last needs at least 4 rungs (3 to fit, 1 to predict)",
        ),
        ("hydra.sweeper.ladder.budget_axis=[0.5]", "has one value: list at least 2"),
        ("hydra.sweeper.ladder.tokens_per_param=0.0001", "raise ladder.tokens_per_param"),
    ],
)
def test_bad_ladder_file_is_one_line_before_any_run(tmp_path, override, fix):
    proc = run_glmlab([*COMMAND, override], tmp_path)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("glmlab: ladder:")]
    assert len(errors) == 1 and fix in errors[0], proc.stderr[-2000:]
    assert not Path(tmp_path / "sweeps").exists()
