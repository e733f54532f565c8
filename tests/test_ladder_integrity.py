"""A ladder report that never mixes or hides cells (#33 item 2) and that checks its own
predictions (#30): fake ladders (tests/ladder_fake.py: the real sweeper, a launcher that
writes run directories from a known truth) with a deleted cell, a failed rung, a widened
grid and a grid run deleted after the seeds ran; the held-out rung's check; exports."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from glmlab.ladder.spec import show_lr
from glmlab.report.build import write_report
from glmlab.report.ladder import load_ladder
from glmlab.report.ladder_export import ladder_rows, render_ladder_table
from glmlab.report.ladder_markdown import holdout_lines, verdict_lines
from glmlab.report.load import load_sweep
from glmlab.report.table import latex_table, rows_of
from tests.ladder_fake import LADDER, run_ladder, world

VARIANT = "objective.shuffle_spans=false"


def line(ladder, metric: str = "token infilling loss") -> str:
    return next(x for x in verdict_lines(ladder) if x.startswith(metric))


def run_dirs(sweep: Path, **want: str) -> list[Path]:
    out = []
    for d in sweep.iterdir():
        name = d.name.replace("-", "=")
        if d.is_dir() and all(f"{k}={v}" in name for k, v in want.items()):
            out.append(d)
    return out


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("ladder") / "sweep"
    run_ladder(sweep)
    return sweep


def copy(full: Path, tmp_path: Path) -> Path:
    shutil.copytree(full, tmp_path / "sweep")
    return tmp_path / "sweep"


def test_full_ladder_verdict_prediction_and_tables(full):
    ladder = load_ladder(load_sweep(full))
    text = line(ladder)
    assert text.startswith(
        f"token infilling loss, {VARIANT} vs objective.shuffle_spans=true: better at every size"
    )
    assert "one rung step, extrapolated" in text and "fit: log, pure power law" in text
    check = ladder.trends["infill_token_loss"].holdout
    assert check.rung == "xl" and len(check.values) == 2 and check.gaps[0].predicted is not None
    assert [a.source for a in check.gaps[0].agreements] == ["s", "m", "l", "prediction"]
    said = holdout_lines(ladder)
    assert any(
        x.startswith(f"prediction check at xl, token infilling loss, {VARIANT}: gap predicted")
        for x in said
    )
    md = write_report(load_sweep(full)).read_text()
    for section in (
        "### Prediction check: rung xl held out",
        "### Learning-rate sensitivity (tuning seeds)",
        "### Compute-equivalent multiplier",
        "| xl (held out) |",
        "unique tokens | epochs |",
        "through token infilling loss (two steps)",
    ):
        assert section in md, section
    rows = ladder_rows(ladder)
    held = [r for r in rows if r["rung"] == "xl" and r["metric"] == "infill_token_loss"]
    assert held[0]["role"] == "held out" and held[0]["predicted_gap"] is not None
    assert isinstance(held[0]["covered"], bool)
    assert "Predicted at xl" in render_ladder_table(full, "latex")


def test_tuning_runs_are_never_pooled_with_verdict_seeds(full):
    """The ordinary report, results.csv and the LaTeX table group runs by role: no
    variant holds a tuning-seed run beside verdict seeds."""
    sweep = load_sweep(full)
    for v in sweep.variants:
        roles = {r for r in v.label.split(", ") if r.startswith("ladder.role=")}
        seeds = {int(r.seed) for r in v.runs}
        assert len(roles) == 1, v.label
        assert seeds <= {1000} if "ladder.role=tuning" in roles else 1000 not in seeds
    assert {r["ladder.role"] for r in rows_of(sweep)} == {"tuning", "verdict"}
    assert "(n = 1, 3)" in latex_table(sweep)


def test_a_deleted_cell_is_named_and_never_called_every_size(full, tmp_path):
    sweep = copy(full, tmp_path)
    for d in run_dirs(sweep, **{"model.dim": "96", "objective.shuffle_spans": "False"}):
        if "seed=1000" not in d.name.replace("-", "="):
            shutil.rmtree(d)
    ladder = load_ladder(load_sweep(sweep))
    text = line(ladder)
    assert "every size" not in text.split(";")[0].replace("not every size", "")
    assert "better at every compared size (s, m, l); no comparison at xl (no seed run" in text
    assert "no comparison at xl (no seed run at lr" in text
    md = write_report(load_sweep(sweep)).read_text()
    assert f"| {VARIANT} | xl | – |" in md and "no comparison: no seed run at lr" in md


def test_a_failed_rung_is_named_with_its_failures(tmp_path):
    def fail(values: dict[str, str]) -> str | None:
        off = values["objective.shuffle_spans"].lower() == "false"
        return (
            "failed" if off and values["model.dim"] == "96" and values["seed"] != "1000" else None
        )

    sweep = tmp_path / "sweep"
    run_ladder(sweep, fail=fail)
    text = line(load_ladder(load_sweep(sweep)))
    assert "no comparison at xl (0 of 3 seed runs completed (3 failed))" in text
    assert "better at every size" not in text


def test_a_widened_grid_supersedes_the_old_seed_runs(tmp_path):
    """The grid's best lr sits at its low edge; the user adds a lower value and reruns:
    the arms choose anew, new seeds train, and the old seed runs are listed as
    superseded, never pooled: each arm counts its 3 seeds at the lr they ran at."""
    sweep = tmp_path / "sweep"
    narrow = {**LADDER, "lr_grid": [3e-3, 1e-2, 3e-2]}
    run_ladder(sweep, narrow)
    first = load_ladder(load_sweep(sweep))
    assert all(a.choice.at_edge == "low" for a in first.arms.values())
    assert "⚠ best lr at the grid's edge" in line(first)
    run_ladder(sweep, {**LADDER, "lr_grid": [1e-3, 3e-3, 1e-2, 3e-2]})
    ladder = load_ladder(load_sweep(sweep))
    moved = 0
    for arm in ladder.arms.values():
        assert len(arm.runs) == 3, (arm.label, arm.rung.name)
        lrs = {dict(o.split("=", 1) for o in r.result.overrides)["train.lr"] for r in arm.runs}
        assert lrs == {show_lr(arm.ran_lr)}
        assert arm.lr == arm.ran_lr and not arm.lr_moved
        moved += len(arm.superseded)
    assert moved == 8 * 3  # every arm moved off 3e-3: its 3 old seeds superseded
    md = write_report(load_sweep(sweep)).read_text()
    assert "24 runs are **superseded** and left out of every verdict" in md
    assert "superseded" in {r["ladder.role"] for r in rows_of(load_sweep(sweep))}


def test_the_chosen_lr_column_is_what_the_seeds_ran_at(full, tmp_path):
    """A grid run deleted after the seeds ran: the grid on disk now points elsewhere; the
    report keeps the seeds' lr, says the grid moved, and still counts those seeds."""
    sweep = copy(full, tmp_path)
    ladder = load_ladder(load_sweep(sweep))
    arm = ladder.arms[(VARIANT, "s")]
    best = show_lr(arm.choice.grid_best)
    for d in run_dirs(
        sweep, **{"model.dim": "32", "objective.shuffle_spans": "False", "seed": "1000"}
    ):
        if f"train.lr={best}" in d.name.replace("-", "="):
            shutil.rmtree(d)
    again = load_ladder(load_sweep(sweep))
    moved = again.arms[(VARIANT, "s")]
    assert moved.ran_lr == arm.ran_lr and moved.lr_moved and len(moved.completed()) == 3
    assert "the grid on disk chooses another lr than the seeds ran at" in line(again)
    md = write_report(load_sweep(sweep)).read_text()
    row = next(x for x in md.splitlines() if x.startswith(f"| {VARIANT} @ s |"))
    assert f"| {show_lr(arm.ran_lr)} | ⚠" in row and "missing" in row


def test_a_gap_contradicting_every_rung_and_a_crossing_are_flagged(tmp_path):
    """The variant is better at every measured rung but flattens: the fitted curves cross
    just past the ladder, and the gap one rung step out has the other sign."""

    def crossing(variant: bool, c: float) -> float:
        base = 60.0 * c**-0.08
        return base * 0.95 * (c / 7.6e10) ** 0.01 if variant else base

    sweep = tmp_path / "sweep"
    run_ladder(sweep, {**LADDER, "holdout": "none"}, world=world(crossing))
    text = line(load_ladder(load_sweep(sweep)))
    # Better at every measured rung, though the last ones may lose significance in the
    # ladder's family (Holm): better at every size, or on average over the rungs.
    call = text.split(": ", 1)[1]
    assert call.startswith(("better at every size", "better on average over the rungs")), call
    assert "the fitted curves cross at C = " in text and "(beyond the ladder)" in text
    assert "⚠ the fitted gap's sign contradicts every measured rung" in text


def test_results_ladder_table_refuses_a_sweep_that_is_no_ladder(full, tmp_path):
    sweep = copy(full, tmp_path)
    (sweep / "ladder.json").unlink()
    with pytest.raises(ValueError, match="no ladder sweep .* drop --table ladder"):
        render_ladder_table(sweep, "csv")


def test_a_budget_axis_gives_a_multiplier_per_token_ratio(tmp_path):
    """Every rung also trains at 10 tokens per parameter: the report gives the
    compute-equivalent multiplier at each ratio (the fake's truth: the variant 3% lower
    loss, a pure power law in C with alpha 0.08, so k = 0.97^(-1/0.08) ~ 1.46 at both)."""
    sweep = tmp_path / "sweep"
    three = {**LADDER, "rungs": LADDER["rungs"][:3], "holdout": "none", "budget_axis": [10, 20]}
    run_ladder(sweep, three)
    ladder = load_ladder(load_sweep(sweep))
    assert [r.name for r in ladder.plan.rungs if r.ratio == 10] == ["s@10", "m@10", "l@10"]
    ks = ladder.trends["infill_token_loss"].multipliers[VARIANT]
    assert set(ks) == {20.0, 10.0}
    for est in ks.values():
        assert math.exp(est.value) == pytest.approx(0.97 ** (-1 / 0.08), rel=0.1)
    md = write_report(load_sweep(sweep)).read_text()
    assert f"| token infilling loss | {VARIANT} | 10 |" in md
    assert "at 2 token ratios (the budget axis)" in md
