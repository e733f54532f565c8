"""The report package's seams: typed run records from one loading path, run-directory names
and statuses only from glmlab.runs.layout, Welch's test from scipy, the callback Hydra is told to
build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.utils import get_class
from scipy import stats as sps

import glmlab.report
from glmlab.cli.callback import SweepReportCallback
from glmlab.report import Sweep, load_sweep
from glmlab.report.stats import SEEDS_WELCH, Arm, compare_arms
from glmlab.runs import layout
from glmlab.runs.layout import RunStatus
from glmlab.runs.result import RunResult

REPO = Path(__file__).resolve().parents[1]


def test_unpaired_seeds_are_scipy_welch_with_its_standard_error() -> None:
    rng = np.random.default_rng(0)
    for n_a, n_b in ((3, 3), (4, 7), (12, 5)):
        a, b = list(rng.normal(1.0, 0.3, n_a)), list(rng.normal(1.2, 0.8, n_b))
        # Different seeds: nothing to pair, Welch's test over seeds.
        got = compare_arms(
            Arm(tuple(a), tuple(range(n_a))), Arm(tuple(b), tuple(range(50, 50 + n_b)))
        )
        want = sps.ttest_ind(a, b, equal_var=False)
        assert got.method == SEEDS_WELCH
        assert got.t == pytest.approx(want.statistic) and got.p == pytest.approx(want.pvalue)
        assert got.df == pytest.approx(want.df)
        assert got.diff == pytest.approx(np.mean(a) - np.mean(b))
        assert got.diff / got.se == pytest.approx(got.t)  # the SE the interval is built on
    # A constant sample against a varying one is a test; two constants are not.
    assert compare_arms(Arm((0.3, 0.3, 0.3), (0, 1, 2)), Arm((0.30, 0.31, 0.32), (3, 4, 5))).p < 1.0
    assert compare_arms(Arm((0.3, 0.3), (0, 1)), Arm((0.5, 0.5), (2, 3))) is None


def test_run_result_is_one_typed_record_of_result_json() -> None:
    """Every key a run writes is a typed field, read back as written (ints taken as
    floats where the field is a float); nothing is read from result.json by name."""
    result = RunResult(
        status="completed",
        step=7,
        tokens_per_s=1200,
        n_params=10,
        attention="sdpa",
        eval={"cloze_acc": 0.5},
        compute={"flops": 1e12},
    )
    again = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result and isinstance(again.tokens_per_s, float)
    assert not hasattr(result, "get") and again.extra == {}


def _run(sweep: Path, name: str, **result: object) -> Path:
    run = sweep / name
    run.mkdir(parents=True)
    (run / layout.RESULT).write_text(json.dumps(result))
    (run / layout.CONFIG).write_text(yaml.safe_dump({"seed": result.get("seed", 0)}))
    return run


def test_load_sweep_gives_typed_results_for_finished_cut_and_damaged_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for seed, (variant, val) in enumerate([("positional=rope", 5.0), ("positional=alibi", 5.5)]):
        _run(
            sweep,
            f"ok{seed}",
            status="completed",
            seed=seed,
            step=20,
            variant=[variant],
            final_val_loss=val,
            eval={"cloze_acc": 0.25, "cloze_ppl": 9.0},
        )
    cut = sweep / "cut"
    (cut / ".hydra").mkdir(parents=True)
    (cut / layout.HYDRA_OVERRIDES).write_text(yaml.safe_dump(["positional=rope", "seed=4"]))
    (cut / layout.CONFIG).write_text("seed: 4\n")
    (cut / layout.METRICS).write_text(json.dumps({"step": 6, "loss": 6.0}) + "\n")
    damaged = _run(sweep, "damaged", status="completed")
    (damaged / layout.RESULT).write_text("{not json")
    (damaged / layout.HYDRA_OVERRIDES).parent.mkdir()
    (damaged / layout.HYDRA_OVERRIDES).write_text(yaml.safe_dump(["positional=alibi", "seed=5"]))

    loaded = load_sweep(sweep, baseline="positional=rope")
    assert isinstance(loaded, Sweep) and loaded.baseline.label == "positional=rope"
    runs = {r.dir.name: r for r in loaded.runs}
    assert all(isinstance(r.result, RunResult) for r in runs.values())
    assert runs["ok0"].metrics == {"final_val_loss": 5.0, "cloze_acc": 0.25, "cloze_ppl": 9.0}
    assert (runs["cut"].status, runs["cut"].result.step) == (layout.UNFINISHED, 6)
    assert (runs["cut"].seed, runs["cut"].result.variant) == ("4", ["positional=rope"])
    assert (
        runs["damaged"].status == RunStatus.FAILED and "unreadable" in runs["damaged"].result.error
    )
    assert runs["damaged"].result.variant == ["positional=alibi"]
    assert [len(v.runs) for v in loaded.variants] == [2, 2]  # baseline first
    assert loaded.metrics() == ["final_val_loss", "cloze_acc"]  # perplexities left out
    with pytest.raises(FileNotFoundError, match=layout.RESULT):
        load_sweep(tmp_path / "sweep" / "ok0")


def test_report_modules_take_file_names_and_statuses_from_layout() -> None:
    names = [
        getattr(layout, c)
        for c in layout.__all__
        if isinstance(getattr(layout, c), str) and "." in getattr(layout, c)
    ]
    statuses = [s.value for s in RunStatus] + [layout.UNFINISHED]
    literals = [f'"{x}"' for x in names + statuses] + [f"'{x}'" for x in names + statuses]
    package = Path(glmlab.report.__file__).parent
    for module in sorted(package.glob("*.py")):
        text = module.read_text(encoding="utf-8")
        found = [lit for lit in literals if lit in text]
        assert not found, f"{module.name} spells {found}: use the glmlab.runs.layout constants"
    assert "report.md" in names and "multirun.yaml" in names and "completed" in statuses


def test_the_configured_callback_is_the_apps() -> None:
    config = yaml.safe_load((REPO / "conf" / "config.yaml").read_text(encoding="utf-8"))
    targets = [c["_target_"] for c in config["hydra"]["callbacks"].values()]
    assert SweepReportCallback in [get_class(t) for t in targets]


def test_callback_writes_the_report_and_prints_the_closing_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from omegaconf import OmegaConf

    import glmlab.cli.app

    monkeypatch.setattr(glmlab.cli.app, "_sweep_exit", [])  # the exit status it would set
    sweep = tmp_path / "sweep"
    values = {"positional=rope": (5.0, 5.1, 5.2), "positional=alibi": (5.6, 5.75, 5.8)}
    for variant, losses in values.items():
        for seed, val in enumerate(losses):
            _run(
                sweep,
                f"{variant.split('=')[1]}{seed}",
                status="completed",
                seed=seed,
                step=20,
                variant=[variant],
                final_val_loss=val,
            )
    _run(sweep, "alibi3", status="failed", seed=3, step=2, variant=["positional=alibi"])
    config = OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(sweep)}}, "report": {"baseline": "positional=rope"}}
    )
    SweepReportCallback().on_multirun_end(config)
    for name in (layout.REPORT_MD, layout.REPORT_HTML, layout.LOSS_CURVES, layout.RESULTS_CSV):
        assert (sweep / name).stat().st_size > 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "glmlab: sweep sweep: verdicts"
    assert out[1].startswith(
        "  positional=alibi vs positional=rope: validation loss worse: +0.6167 ["
    )
    assert "judged on 3 of 4 seeds (1 failed or unfinished)" in out[1] and "**" not in out[1]
    assert out[-2] == f"  report: {sweep / layout.REPORT_MD} (and {layout.REPORT_HTML})"
    assert out[-1] == f"glmlab: sweep {sweep}: 7 runs: 6 completed, 0 diverged, 1 failed"
    assert glmlab.cli.app._sweep_exit == [1]
