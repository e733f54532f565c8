"""build_run: one downward pass. The model is built first through the one model builder
(its attention backend ``auto`` timed on the run's first training batch), then the batch
sources and the evaluation suite with the backend's host work; the model's weights come
from the run's seed."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_module

import glmlab.model.build as model_build
from glmlab.assembly import build_batch_sources, build_run
from glmlab.config.spec import parse_config
from glmlab.model.attention_select import AttentionSelection
from tests.conftest import TINY

SMALL_SUITE = ["train.eval_suite_items=8", "train.cloze_items=8"]


def spec_of(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return parse_config(compose("config", overrides=[*TINY, *SMALL_SUITE, *overrides]))


def test_auto_is_chosen_on_the_first_batch_then_handed_to_every_part(monkeypatch):
    # The CUDA path on the CPU: ``auto`` "measures" (a stand-in for the timing) and picks
    # eager; its sample must be training batch 0 without any backend's host work.
    seen = {}

    def measure(request, measure_on):
        seen["batch"] = measure_on.sample()
        return AttentionSelection("eager", "measured", "auto")

    monkeypatch.setattr(model_build, "should_measure", lambda requested, device, on: True)
    monkeypatch.setattr(model_build, "measure_auto", measure)
    spec = spec_of("attention=auto")
    parts = build_run(spec, torch.device("cpu"))

    assert parts.model.attention_name == "eager"
    assert parts.model.attention_selection.method == "measured"
    backend = parts.model.attention
    for source in (parts.batches.train, parts.batches.validation):
        assert source.prepare_host == backend.prepare_host
    assert parts.eval_suite is not None and parts.eval_suite.prepare_host == backend.prepare_host
    first = parts.batches.train.batch(0)
    assert torch.equal(seen["batch"].input_ids, first.input_ids)
    assert seen["batch"].layout.host_prepared == {}


def test_the_model_starts_from_the_seed_and_initial_model_repeats_it():
    spec = spec_of("train.eval_suite=false")
    parts = build_run(spec, torch.device("cpu"))
    assert parts.eval_suite is None
    again = parts.initial_model()
    other = build_run(spec_of("seed=1", "train.eval_suite=false"), torch.device("cpu")).model
    state, same, different = (m.state_dict() for m in (parts.model, again, other))
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert not all(torch.equal(state[k], different[k]) for k in state)


def test_the_batches_of_build_run_are_those_of_build_batch_sources():
    # What ``glmlab inspect`` shows (build_batch_sources, no model) is what the run trains on.
    spec = spec_of("train.eval_suite=false")
    parts = build_run(spec, torch.device("cpu"))
    alone = build_batch_sources(spec, parts.data, parts.samples).train
    for i in range(3):
        a, b = parts.batches.train.batch(i), alone.batch(i)
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.target_ids, b.target_ids)
