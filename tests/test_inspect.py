"""``glmlab inspect`` (one training sample, its table and mask) and ``glmlab infill``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.cli.infill import Infiller
from glmlab.cli.inspect import (
    compose_config,
    inspect_sample,
    render_mask_art,
    render_table,
    save_mask_png,
)
from glmlab.cli.run import execute_run
from glmlab.objective.batches import collate_rows
from glmlab.objective.sample import build_glm_sample
from tests.conftest import TINY


def test_inspect_shows_the_glm_sample_and_its_prefix_lm_mask(tmp_path):
    ins = inspect_sample(compose_config([*TINY, "objective=glm130b"]))
    s = ins.sample
    n = len(s)
    q, k = np.arange(n)[:, None], np.arange(n)[None, :]
    assert np.array_equal(ins.mask, (k < s.sep) | (k <= q))  # GLM: Part A bidirectional

    table = render_table(ins).splitlines()
    assert table[0].split() == ["i", "token", "part", "pos1", "pos2", "target", "loss"]
    assert len(table) == n + 1
    sop = table[1 + s.sep].split()  # the first Part B token
    assert sop[1].startswith("[sop") and sop[2] == "B1" and sop[4] == "1" and sop[-1] == "1"
    assert table[1].split()[-1] == "0"  # no loss in Part A
    assert any(t in ins.tokens for t in ("[MASK]", "[gMASK]"))

    art = render_mask_art(ins.mask, s.sep).splitlines()
    assert art[0] == f"attention mask: {n} x {n} tokens"
    assert art[1] == "█" * s.sep + "│" + "·" * (n - s.sep)  # Part A sees only Part A
    assert art[-1] == "█" * s.sep + "│" + "█" * (n - s.sep)  # the last token sees all
    assert save_mask_png(ins, tmp_path / "mask.png", "t")
    assert (tmp_path / "mask.png").stat().st_size > 5_000


def test_mask_art_draws_long_samples_in_blocks():
    mask = np.tril(np.ones((200, 200), dtype=bool))
    art = render_mask_art(mask, 0, max_width=50).splitlines()
    assert art[0] == "attention mask: 200 x 200 tokens, 4 per cell"
    assert len(art) == 51 and art[1] == "█" + "·" * 49


@pytest.mark.slow
def test_inspect_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.cli", "inspect", *TINY, "objective=mlm", "--png", "m.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[MASK]" in proc.stdout and "attention mask:" in proc.stdout
    assert (tmp_path / "m.png").exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("run")
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "train.eval_suite=false"])
    assert execute_run(cfg, run_dir, []).status == "completed"
    return run_dir


@pytest.mark.slow
def test_infill_fills_each_blank_through_the_training_layout(trained_run):
    infiller = Infiller(trained_run)
    before, after = "Return the ", " of the list."
    out = infiller.fill(f"{before}[MASK]{after}", max_tokens=1)
    assert out.text == before + out.fills[0] + after and out.fills[0]

    # The same prediction by hand: build_glm_sample, the model, argmax at [sop].
    tok = infiller.tokenizer
    sp = tok.specials
    a, b = tok.encode(before), tok.encode(after)
    ids = np.concatenate([a, [sp.eop], b])  # the blank's content is not visible to [sop]
    sample = build_glm_sample(
        ids, [(len(a), len(a) + 1)], mask_id=sp.mask, sop_id=sp.sop, eop_id=sp.eop
    )
    batch = collate_rows(
        [[sample]], seq_len=len(sample), pad_id=sp.pad, mask_builder=infiller.mask_builder
    )
    with torch.no_grad():
        hidden = infiller.model(batch.input_ids, batch.position_ids, batch.layout)
        logits = infiller.model.logits(hidden[0, sample.sep]).float()
    logits[[*infiller.banned, sp.eop]] = -torch.inf
    assert out.fills[0] == tok.decode([int(logits.argmax())])

    two = infiller.fill("a [MASK] b [MASK] c", max_tokens=4)
    assert len(two.fills) == 2 and all(two.fills)
    assert infiller.fill("a [MASK] b [MASK] c", max_tokens=4) == two  # greedy: deterministic
    sampled = {infiller.fill("x [MASK]", top_k=50, max_tokens=3, seed=s).fills[0] for s in range(4)}
    assert len(sampled) > 1
    with pytest.raises(ValueError, match="no blank"):
        infiller.fill("nothing to fill")
    with pytest.raises(ValueError, match="one kind of blank"):
        infiller.fill("a [MASK] b [gMASK]")


@pytest.mark.slow
def test_infill_command(trained_run):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmlab.cli",
            "infill",
            "--checkpoint",
            str(trained_run),
            "--text",
            "The [MASK] module.",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("The ") and proc.stdout.rstrip().endswith(" module.")
    assert "blank 0:" in proc.stderr


@pytest.mark.slow
def test_infill_reads_a_completed_run_weights_file_and_warns_on_untrained_blanks(trained_run):
    # keep_checkpoint=final (the default): the completed run kept weights.pt only.
    assert (trained_run / "weights.pt").exists() and not (trained_run / "checkpoint.pt").exists()
    from_file = Infiller(trained_run / "weights.pt").fill("a [MASK] b", max_tokens=2)
    assert from_file == Infiller(trained_run).fill("a [MASK] b", max_tokens=2)
    with pytest.warns(UserWarning, match=r"\[gMASK\] was never trained in this run"):
        Infiller(trained_run).fill("a [gMASK]", max_tokens=1)
    with pytest.raises(FileNotFoundError, match="run directory"):
        Infiller(trained_run / "nowhere")
