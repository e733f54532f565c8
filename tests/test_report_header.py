"""Every output says what ran: the report's settings line names each plugin choice, the
objective and its samplers, the vocabulary and tokenizer; the ladder, compare and LaTeX
outputs carry it; reports are titled by the experiment; loss figures carry the caveat;
``glmlab plugins`` maps plugins to the presets that use them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glmlab.config.schema import PLUGIN_GROUPS
from glmlab.report.build import build_report
from glmlab.report.compare import CONFOUNDED, DIFFERENT_VERDICT, compare_sweeps
from glmlab.report.header import architecture_keys, shared_settings
from glmlab.report.load import load_sweep
from glmlab.report.plots import loss_caveat
from glmlab.report.table import latex_table
from glmlab.runs.result import read_result, write_result
from tests.test_report import BASE, OFF, write_run

CONFIG = {
    "name": "span_shuffle_ablation",
    "model": {"n_layers": 2, "dim": 64, "n_heads": 4},
    "positional": {"name": "rope"},
    "norm_layout": {"name": "deepnorm", "constants": "glm130b"},
    "mask_builder": {"name": "glm"},
    "attention": {"name": "auto"},
    "objective": {
        "kind": "glm",
        "sentinels": False,
        "task_sampling": "batch",
        "samplers": {"token": {"weight": 1.0, "mask_ratio": 0.15}},
    },
    "data": {"corpus": "stdlib_docs", "vocab_size": 1024, "n_sentinels": 100, "seq_len": 128},
    "train": {"max_steps": 800, "batch_size": 16},
}


def sweep_with_config(folder: Path, off_values: list[float], **changes: dict) -> Path:
    """A span-shuffle sweep whose runs hold a full config (``changes`` replace groups)."""
    for seed, val in enumerate([5.0, 5.2, 5.4]):
        write_run(folder, f"on{seed}", BASE, seed, val=val, cloze=0.3)
    for seed, val in enumerate(off_values):
        write_run(folder, f"off{seed}", OFF, seed, val=val, cloze=0.3)
    for run in folder.iterdir():
        own = yaml.safe_load((run / "config.yaml").read_text())
        config = {**CONFIG, **changes, "seed": own["seed"]}
        config["objective"] = {**config["objective"], **own["objective"]}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        result = read_result(run)
        result.attention = "sdpa"
        write_result(run, result)
    # The verdict metric is the suite's: the variants train different objectives, so their
    # validation losses are not tested against each other.
    report = {"baseline": BASE, "metric": "infill_token_loss"}
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"report": report}))
    return folder


def test_settings_line_names_every_plugin_choice_and_the_vocabulary(tmp_path):
    sweep = load_sweep(sweep_with_config(tmp_path / "s", [5.1, 5.3, 5.5]))
    line = shared_settings(sweep)
    for group in PLUGIN_GROUPS:  # every plugin kind of the config, by name
        assert f"{group} " in line, group
    assert "positional rope" in line and "norm_layout deepnorm (constants=glm130b)" in line
    assert "mask_builder glm" in line and "attention auto (ran sdpa)" in line
    assert "objective glm: samplers token (mask_ratio 0.15, weight 1)" in line
    assert "vocab 1024 (BPE trained on the corpus, 100 sentinels)" in line
    assert "800 steps × 16 × 128 tokens" in line and "model 2 × 64, 4 heads" in line
    assert "varies between runs: objective.shuffle_spans" in line  # what the sweep varies
    md = (build_report(sweep.dir)).read_text()
    assert md.startswith("# Sweep report: span_shuffle_ablation\n") and line in md


def test_report_is_titled_by_the_experiment_not_its_folder(tmp_path):
    moved = tmp_path / "copy_of_results"
    shutil.copytree(sweep_with_config(tmp_path / "s", [5.1, 5.3, 5.5]), moved)
    assert load_sweep(moved).name == "span_shuffle_ablation"
    html = (moved / "report.html") if build_report(moved) else None
    assert "<title>Sweep report: span_shuffle_ablation</title>" in html.read_text()


def test_latex_output_carries_the_settings_as_its_caption(tmp_path):
    text = latex_table(load_sweep(sweep_with_config(tmp_path / "s", [5.1, 5.3, 5.5])))
    caption = next(line for line in text.splitlines() if line.startswith(r"% \caption{"))
    assert "span\\_shuffle\\_ablation: 800 steps x 16 x 128 tokens" in caption
    assert "positional rope" in caption and "vocab 1024" in caption


# The CPU sweep's variant differs from its baseline by +0.3, -0.1, +0.1 by seed: not
# significant; the GPU sweep's by about +1.9 on every seed: worse. The verdicts differ.
CPU_OFF = [5.3, 5.1, 5.5]


def test_compare_marks_a_differing_verdict_confounded_by_the_architecture(tmp_path):
    cpu = sweep_with_config(tmp_path / "cpu" / "abl", CPU_OFF)
    gpu = sweep_with_config(
        tmp_path / "gpu" / "abl",
        [7.0, 7.1, 7.2],
        positional={"name": "learned_2d"},
        data={**CONFIG["data"], "vocab_size": 32768},
        model={"n_layers": 12, "dim": 768, "n_heads": 12},
    )
    md = compare_sweeps([cpu, gpu], tmp_path / "out").read_text()
    for key, a, b in (("positional.name", "rope", "learned_2d"), ("data.vocab_size", 1024, 32768)):
        assert f"| {key} | {a} | {b} |" in md  # every setting that differs is listed
    assert "⚠ The sweeps differ in what they train" in md
    assert "data.vocab_size, positional.name" in md  # not model.dim: that is the scale
    marked = [line for line in md.splitlines() if DIFFERENT_VERDICT in line and "|" in line]
    assert marked and all(f"({CONFOUNDED}: data.vocab_size, positional.name" in m for m in marked)


def test_compare_of_two_scales_of_one_architecture_is_not_confounded(tmp_path):
    cpu = sweep_with_config(tmp_path / "cpu" / "abl", CPU_OFF)
    gpu = sweep_with_config(
        tmp_path / "gpu" / "abl", [7.0, 7.1, 7.2], model={"n_layers": 12, "dim": 768}
    )
    md = compare_sweeps([cpu, gpu], tmp_path / "out").read_text()
    assert any(line.endswith(f"| {DIFFERENT_VERDICT} |") for line in md.splitlines())
    assert CONFOUNDED not in md
    assert architecture_keys(["model.dim", "model.ffn", "objective.kind", "train.lr"]) == [
        "model.ffn",
        "objective.kind",
    ]


def test_compare_refuses_a_sweep_compared_with_itself(tmp_path):
    sweep = sweep_with_config(tmp_path / "s", [5.1, 5.3, 5.5])
    with pytest.raises(ValueError, match="are the same sweep directory"):
        compare_sweeps([sweep, tmp_path / "." / "s"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_loss_figures_carry_the_caveat_of_other_objectives(tmp_path):
    sweep = load_sweep(sweep_with_config(tmp_path / "s", [5.1, 5.3, 5.5]))
    caveat = loss_caveat({v.label: v.runs for v in sweep.variants})
    assert caveat and "objective.shuffle_spans" in caveat and "not comparable" in caveat.lower()
    md = build_report(sweep.dir).read_text()
    assert f"⚠ {caveat}." in md  # under the figure in the report too
    same = {v.label: v.runs for v in sweep.variants if v.label == BASE}
    assert loss_caveat(same) is None


@pytest.mark.slow  # an interpreter that imports torch and the registry
def test_plugins_lists_the_presets_that_use_each_plugin():
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.cli", "plugins", "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    presets = {(e["kind"], e["name"]): e["presets"] for e in json.loads(proc.stdout)}
    assert "objective=glm_token" in presets[("span_sampler", "token")]
    assert "objective=glm130b" in presets[("span_sampler", "gmask")]
    assert {"norm_layout=deepnorm_glm130b", "norm_layout=deepnorm_deepnet"} <= set(
        presets[("norm_layout", "deepnorm")]
    )
    assert presets[("positional", "rope")] == ["positional=rope"]
    assert presets[("tracker", "wandb")] == ["tracker=[wandb]"]
