"""What a new user meets first: --version and --help, -m anywhere, clear errors for a bad
baseline, metric or plugin option, the closing summaries, the run directory's name, the
checkpoint policy and plain progress lines in a log file."""

from __future__ import annotations

import argparse
import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import glmlab.objective.sample
from glmlab.cli import main as cli
from glmlab.cli.help import app_help, prepare_argv, version_text
from glmlab.cli.summary import run_summary
from glmlab.config.scale import ScaleChoice
from glmlab.runs.result import RunResult, write_result
from tests.conftest import TINY, run_glmlab
from tests.test_report import BASE, OFF, TINY_SWEEP, write_run


def test_versions_name_glmlab_and_torch(capsys):
    assert version_text().startswith("glmlab ") and f"torch {torch.__version__}" in version_text()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == version_text()


def test_app_help_explains_multirun_experiments_and_tools():
    text = app_help()
    for needle in ("-m (--multirun)", "+experiment=NAME", "glmlab --help", "--hydra-help"):
        assert needle in text
    for experiment in ("span_shuffle_ablation", "objective_ablation", "posenc_ablation"):
        assert experiment in text
    assert "objective.shuffle_spans=true,false" in text  # what each experiment sweeps


def test_app_help_says_multirun_runs_side_by_side():
    """The local launcher runs a sweep's runs at once (docs/SCALING.md, "Local sweeps")."""
    text = " ".join(app_help().split())
    assert "side by side" in text and "hydra.launcher.n_jobs=N" in text
    assert "one after the other" not in text
    assert "scale=auto" in text and "scale=cpu" in text and "scale=gpu" in text


def test_app_help_lists_every_command_of_the_glmlab_parser():
    """The "More" list comes from the console script's parser: a new command is listed."""
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    more = app_help().split("More:")[1]
    listed = {line.split()[1] for line in more.splitlines() if line.strip().startswith("glmlab ")}
    assert set(sub.choices) <= listed, set(sub.choices) - listed
    assert {name for name, _, _ in cli.commands()} == set(sub.choices)


def test_tools_help_shows_each_commands_usage_with_optional_flags_in_brackets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, usage, about in cli.commands():
        assert usage.startswith(f"glmlab {name}") and usage in out and about in out
    assert "glmlab compare [--out OUT] SWEEP_DIR [SWEEP_DIR ...]" in out
    assert "glmlab results [--format {csv,parquet,json,markdown,latex}] [--out OUT]" in out
    assert "glmlab infill --checkpoint RUN_DIR --text TEXT [--top-k TOP_K]" in out
    assert "glmlab submit OVERRIDES..." in out


@pytest.mark.slow  # two interpreters that import torch and Hydra
def test_python_m_glmlab_prints_the_version_and_the_app_help():
    version, help_ = (
        subprocess.run(
            [sys.executable, "-m", "glmlab", flag], capture_output=True, text=True, timeout=120
        )
        for flag in ("--version", "--help")
    )
    assert version.returncode == 0 and version.stdout.strip() == version_text()
    assert "Hydra" not in version.stdout
    assert help_.returncode == 0 and help_.stdout.strip() == app_help().strip()
    assert "powered by Hydra" not in help_.stdout


def test_tools_help_has_no_rest_markup(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "glmlab report " in out and "``" not in out and ":func:" not in out


def test_multirun_flag_may_stand_anywhere():
    for argv in (
        ["glmlab", "-m", "+experiment=x", "seed=1"],
        ["glmlab", "+experiment=x", "-m", "seed=1"],
        ["glmlab", "+experiment=x", "seed=1", "--multirun"],
    ):
        out = prepare_argv(argv)
        assert out[1] in ("-m", "--multirun") and out[2:] == ["+experiment=x", "seed=1"]
    assert prepare_argv(["glmlab", "seed=1", "train.device=cpu"]) == [
        "glmlab",
        "seed=1",
        "train.device=cpu",
        "+scale=cpu",
    ]


@pytest.fixture
def two_variant_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for seed in range(2):
        write_run(sweep, f"on{seed}", BASE, seed, val=5.0 + seed / 10, cloze=0.3)
        write_run(sweep, f"off{seed}", OFF, seed, val=5.5 + seed / 10, cloze=0.4)
    return sweep


def test_report_baseline_in_either_spelling_and_bad_choices_rejected(two_variant_sweep, capsys):
    # Spelled as in the run directory names (Python's True): accepted.
    assert (
        cli.main(["report", str(two_variant_sweep), "--baseline", "objective.shuffle_spans=True"])
        == 0
    )
    assert f"{BASE} **(baseline)**" in (two_variant_sweep / "report.md").read_text()
    capsys.readouterr()
    assert cli.main(["report", str(two_variant_sweep), "--baseline", "objective.x=1"]) == 2
    err = capsys.readouterr().err
    assert "not a variant" in err and BASE in err and OFF in err
    assert cli.main(["report", str(two_variant_sweep), "--metric", "cloze_accuracy"]) == 2
    err = capsys.readouterr().err
    assert "cloze_accuracy" in err and "cloze_acc" in err and "final_val_loss" in err


@pytest.mark.parametrize("override", ["positional=ropee", "positional.name=ropee"])
def test_inspect_bad_plugin_is_one_line_with_the_choices(override, capsys, tmp_path):
    assert cli.main(["inspect", override, "--png", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ropee" in err
    assert "learned_2d" in err and "rope_2d" in err and "Traceback" not in err


def test_run_summary_names_dir_status_metrics_and_references(tmp_path):
    (tmp_path / "eval_items.json").write_text(
        json.dumps(
            {
                "reference_metrics": {
                    "unigram": {"infill_token_loss": 5.7},
                    "chance": {"cloze_acc": 0.25},
                }
            }
        )
    )
    result = RunResult(
        status="completed",
        step=500,
        wall_time_s=61.2,
        seed=1,
        variant=[OFF],
        final_val_loss=4.5,
        eval={"infill_token_loss": 5.2, "cloze_acc": 0.41},
    )
    single = run_summary(result, tmp_path)
    assert single.splitlines()[0] == f"glmlab: run completed at step 500 in 61 s: {tmp_path}"
    assert "token infilling loss 5.200 (unigram 5.700)" in single
    assert "cloze accuracy 0.410 (chance 0.250)" in single
    # The run's own objective apart from the evaluation suite, each labelled as such.
    assert "validation loss (own objective) 4.500" in single and "evaluation suite" in single
    line = run_summary(result, tmp_path, job=3)
    assert line.startswith(f"glmlab: [run 3] {OFF} seed=1: completed at step 500")
    assert "\n" not in line and str(tmp_path) in line and "(own objective) 4.500" in line


def _single_run(folder: Path, cloze_rate: float, doc_gen: float) -> RunResult:
    """A completed run's result.json and eval_items.json: token infilling clearly past the
    unigram level 5.7, cloze about ``cloze_rate``, generation about ``doc_gen``."""
    rng = np.random.default_rng(0)
    n = rng.integers(10, 20, size=200).astype(float)
    credit = (rng.random(256) < cloze_rate).astype(float)
    refs = {"infill_token_loss": 5.7, "doc_gen_loss": 5.7}
    items = {
        "reference_metrics": {"unigram": refs, "chance": {"cloze_acc": 0.25}},
        "tasks": {
            "infill_token": {"logp": list(-(5.2 + rng.normal(0, 0.3, 200)) * n), "n": list(n)},
            "doc_gen": {"logp": list(-(doc_gen + rng.normal(0, 0.3, 200)) * n), "n": list(n)},
            "cloze": {"credit": list(credit)},
        },
    }
    (folder / "eval_items.json").write_text(json.dumps(items))
    evaluation = {
        "infill_token_loss": 5.2,
        "cloze_acc": float(credit.mean()),
        "doc_gen_loss": doc_gen,
    }
    result = RunResult(status="completed", step=500, seed=0, final_val_loss=4.5, eval=evaluation)
    write_result(folder, result)
    return result


def test_single_run_summary_says_plainly_which_metric_is_not_past_its_reference(tmp_path):
    """Tested as the sweep report tests a variant: the whole 95% interval over the items."""
    result = _single_run(tmp_path, cloze_rate=0.26, doc_gen=5.0)  # cloze about chance
    text = run_summary(result, tmp_path, scale=ScaleChoice("cpu", False, "no CUDA device"))
    lines = text.splitlines()
    assert lines[1] == "  scale cpu (auto: no CUDA device; scale=gpu to choose)"
    infill = next(ln for ln in lines if "token infilling loss" in ln)
    cloze = next(ln for ln in lines if "cloze accuracy" in ln)
    assert ": past unigram (95% interval 5." in infill and "NOT" not in infill
    assert ": ⚠ NOT past chance (95% interval 0." in cloze
    assert lines[-1].startswith("  ⚠ not past its trivial reference: cloze accuracy: ")


def test_single_run_past_the_reports_references_but_not_on_generation_says_so(tmp_path):
    result = _single_run(tmp_path, cloze_rate=0.45, doc_gen=6.1)
    lines = run_summary(result, tmp_path).splitlines()
    generation = next(ln for ln in lines if "generation loss" in ln)
    assert ": ⚠ NOT past unigram (95% interval 6." in generation
    assert lines[-1].startswith(
        "  ⚠ past the references a sweep report judges (token infilling loss, cloze accuracy), "
        "not yet on generation loss"
    )


def test_build_glm_sample_docstring_holds_the_worked_example():
    doc = glmlab.objective.sample.build_glm_sample.__doc__
    assert ">>> s = build_glm_sample(" in doc
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(
        glmlab.objective.sample.build_glm_sample, globs=vars(glmlab.objective.sample)
    ):
        runner.run(test)
    assert runner.tries >= 4 and runner.failures == 0


@pytest.mark.slow
def test_single_run_dir_summary_checkpoint_policy_and_plain_progress(tmp_path):
    args = [*TINY, "train.progress=true", "train.max_steps=20", "train.log_interval=2"]
    proc = run_glmlab(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Named by its overrides (like a sweep's runs), not by the time it started.
    (run,) = (tmp_path / "runs" / "default").iterdir()
    assert run.name.startswith("data.n_sentinels=16,") and "model.dim=32" in run.name
    assert "glmlab: run completed at step 20" in proc.stdout and str(run) in proc.stdout
    assert "token infilling loss" in proc.stdout and "(unigram " in proc.stdout
    assert (run / "weights.pt").exists() and not (run / "checkpoint.pt").exists()
    # stderr is a pipe, not a terminal: plain lines, about ten, no carriage returns.
    output = proc.stdout + proc.stderr  # Hydra's job logging writes to stdout
    assert "\r" not in output
    steps = [line for line in output.splitlines() if "step " in line and "/20: loss" in line]
    assert 5 <= len(steps) <= 11 and steps[-1].split("step ")[1].startswith("20/20")
    # The same command again: the same directory, skipped.
    again = run_glmlab(args, cwd=tmp_path)
    assert "skipped" in again.stderr + again.stdout
    assert len(list((tmp_path / "runs" / "default").iterdir())) == 1

    def new_run(policy: str) -> Path:
        before = set((tmp_path / "runs" / "default").iterdir())
        proc = run_glmlab([*TINY, f"train.keep_checkpoint={policy}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        (new,) = set((tmp_path / "runs" / "default").iterdir()) - before
        return new

    none = new_run("none")
    assert not (none / "weights.pt").exists() and not (none / "checkpoint.pt").exists()
    kept = new_run("last")
    assert (kept / "checkpoint.pt").exists() and not (kept / "weights.pt").exists()
    bad = run_glmlab([*TINY, "train.keep_checkpoint=some"], cwd=tmp_path)
    assert bad.returncode != 0 and "final, last, none" in bad.stderr


@pytest.mark.slow
def test_multirun_with_overrides_after_m_prints_runs_and_a_closing_summary(tmp_path):
    proc = run_glmlab(
        [*TINY_SWEEP, "name=after_m", "-m", "objective.shuffle_spans=true,false", "seed=0"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    runs = [line for line in proc.stdout.splitlines() if line.startswith("glmlab: [run ")]
    assert len(runs) == 2 and all("seed=0: completed at step 6" in line for line in runs)
    # Side by side (2 cores), either run may end first: match each line to its variant.
    by_index = dict(sorted((int(line.split("]")[0].split()[-1]), line) for line in runs))
    assert "objective.shuffle_spans=true" in by_index[0], runs
    assert "objective.shuffle_spans=false" in by_index[1], runs
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "glmlab: sweep sweeps/after_m: 2 runs: 2 completed, 0 diverged, 0 failed", last
    sweep = tmp_path / "sweeps" / "after_m"
    assert f"report: {sweep.resolve() / 'report.md'}" in proc.stdout or "report.md" in proc.stdout
    assert (sweep / "loss_curves.png").exists()  # matplotlib is a main dependency


def test_inspect_draws_its_mask_under_runs_by_default():
    args = cli.build_parser().parse_args(["inspect", "positional=rope"])
    parser_default = args.png
    assert parser_default.startswith("runs/")  # /runs/ is in .gitignore
    assert "/runs/" in (Path(__file__).parents[1] / ".gitignore").read_text().split()


# The bare command's CPU run: 800 steps are past both references on every seed measured
# (500 are not past chance on cloze; README, "Set up and run").
BARE_STEPS = 800


@pytest.mark.slow  # one CPU run of the bare command: about a minute on an idle core
def test_the_bare_command_learns_past_its_references_on_a_cpu(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # on the CPU, as scale=auto picks there
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab", f"train.max_steps={BARE_STEPS}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "  scale cpu (auto: no CUDA device on this machine; scale=gpu to choose)" in lines
    assert any(ln.startswith("  validation loss (own objective) ") for ln in lines)
    infill = next(ln for ln in lines if ln.startswith("    token infilling loss "))
    cloze = next(ln for ln in lines if ln.startswith("    cloze accuracy "))
    assert ": past unigram (95% interval " in infill, proc.stdout
    assert ": past chance (95% interval " in cloze, proc.stdout
    (run,) = (tmp_path / "runs" / "default").iterdir()
    assert run.name == f"train.max_steps={BARE_STEPS}"  # the scale names no directory
    assert not (run / ".lock").exists() and (run / "weights.pt").exists()
