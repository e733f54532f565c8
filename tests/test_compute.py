"""Compute and data counted whole (glmlab/ladder/compute.py): the output head's FLOPs at
the scored positions, checked by hand and against torch's own FLOP counter on a real
batch; epochs over the training split recorded in result.json, warned about past 4."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from glmlab.ladder.compute import (
    MAX_EPOCHS,
    ModelShape,
    data_use,
    non_embedding_params,
    scored_fraction,
    training_compute,
)
from tests.conftest import TINY, run_glmlab


def test_flops_count_blocks_attention_and_the_head_at_scored_positions():
    shape = ModelShape(2, 64, vocab_size=1024)
    c = training_compute(shape, tokens_per_step=2048, steps=100, seq_len=128, scored_fraction=0.25)
    n = 2 * (12 * 64 * 64 + 9 * 64)  # 4d^2+4d attention, 8d^2+5d MLP
    d = 204_800
    assert c.non_embedding_params == n and c.tokens == d
    assert c.flops_parts == pytest.approx(
        {"blocks": 6 * n * d, "attention": 12 * 2 * 64 * 128 * d, "head": 6 * 64 * 1024 * d * 0.25}
    )
    assert c.flops == pytest.approx(sum(c.flops_parts.values()))
    assert c.head_counted and c.scored_fraction == 0.25
    # At this width the head at every position would be a third of the FLOPs; at a
    # quarter of them it is still over a tenth.
    assert c.flops_parts["head"] / c.flops > 0.1


def test_flops_match_torchs_counter_on_a_real_batch():
    """Forward + backward of one training batch, counted by torch.utils.flop_counter,
    agrees with the formula within 3% (the formula also counts the biases as
    multiply-adds; the counter leaves out elementwise work): with the head left out it
    would be short by the head's share."""
    from glmlab.assembly.run import build_run
    from glmlab.cli.inspect import compose_config
    from glmlab.config.spec import parse_config

    overrides = [o for o in TINY if not o.startswith("train.")] + ["attention=eager"]
    spec = parse_config(compose_config(overrides))
    parts = build_run(spec, torch.device("cpu"))
    batch = parts.batches.train.batch(0)
    model = parts.model
    with FlopCounterMode(display=False) as counter:
        model.loss(batch).backward()
    counted = counter.get_total_flops()
    b, s = batch.input_ids.shape
    scored = batch.loss_positions.numel() / (b * s)
    shape = ModelShape(
        spec.model.n_layers, spec.model.dim, vocab_size=parts.data.tokenizer.padded_vocab_size
    )
    c = training_compute(shape, tokens_per_step=b * s, steps=1, seq_len=s, scored_fraction=scored)
    assert counted == pytest.approx(c.flops, rel=0.03)
    assert abs(counted - (c.flops - c.flops_parts["head"])) > 0.05 * counted


def test_scored_fraction_measures_the_runs_own_batches():
    """GLM scores Part B only: a fraction well below 1; measured on the training source."""
    from glmlab.assembly.run import build_run
    from glmlab.cli.inspect import compose_config
    from glmlab.config.spec import parse_config

    spec = parse_config(compose_config([o for o in TINY if not o.startswith("train.")]))
    source = build_run(spec, torch.device("cpu")).batches.train
    f = scored_fraction(source, steps=40, samples=8)
    exact = sum(
        int((s.loss_mask > 0).sum())
        for i in (0, 5, 10, 15, 20, 25, 30, 35)
        for row in source.rows(i)
        for s in row
    ) / (8 * source.batch_size * source.seq_len)
    assert f == pytest.approx(exact)
    assert 0.05 < f < 0.5


def test_data_use_counts_epochs_over_the_split():
    use = data_use(unique_tokens=10_000, examples=100, steps=50, batch_size=4, grad_accum=2)
    assert use.epochs == pytest.approx(4.0)
    assert use.unique_tokens == 10_000 and use.examples == 100


@pytest.mark.slow
def test_result_json_records_compute_and_epochs_and_warns_past_four(tmp_path):
    """A run on a small text corpus that reads it > 4 times: result.json's compute has the
    head, the total parameters, tokens per parameter and epochs; the log warns."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k in range(12):
        (corpus / f"{k}.txt").write_text(
            " ".join(
                f"Sentence {k} number {j} says something about item {j * k}." for j in range(40)
            ),
            encoding="utf-8",
        )
    steps = 80
    proc = run_glmlab(
        [
            *TINY,
            f"train.max_steps={steps}",
            "data=text_files",
            f"data.corpus_options.pattern={corpus}/*.txt",
            "data.corpus_options.validation_fraction=0.2",
            "train.eval_suite=false",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result_file,) = tmp_path.glob("runs/**/result.json")
    compute = json.loads(result_file.read_text())["compute"]
    assert compute["head_counted"] and compute["flops_parts"]["head"] > 0
    assert compute["total_params"] > compute["non_embedding_params"]
    assert compute["tokens_per_param"] == pytest.approx(compute["tokens"] / compute["total_params"])
    data = compute["data"]
    assert data["epochs"] == pytest.approx(steps * 4 / data["examples"])
    assert data["epochs"] > MAX_EPOCHS
    log = (result_file.parent / "app.log").read_text()
    assert "reads its training split" in log and "epochs" in log


def test_non_embedding_params_unchanged_by_the_vocabulary():
    assert non_embedding_params(ModelShape(2, 64, vocab_size=4096)) == non_embedding_params(
        ModelShape(2, 64)
    )
