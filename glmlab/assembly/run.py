"""``build_run``: one downward pass from a :class:`~glmlab.config.spec.RunSpec` to the parts
of a run, each handed what it needs when it is built (torchtitan's ``build()`` pass).

1. data (corpus, tokenizer, example sets) and its split check;
2. sample parts: the tokenizer's special tokens, the objective, the checked mask builder;
3. the model (seeded by ``spec.seed``; :func:`glmlab.model.build.build_model`, the one
   model builder), whose attention backend ``auto`` on CUDA chooses by timing the
   candidates on the run's first training batch, built by a batch source without any
   backend's host work;
4. the batch sources (train, validation) with the model's backend's ``prepare_host``;
5. the evaluation suite (when ``train.eval_suite``), on the GLM-chunked test split.

Nothing built later reaches back into something built earlier. The finer builders
(:mod:`glmlab.assembly.data`, :mod:`glmlab.assembly.model`) serve what needs only some of
the parts: ``glmlab inspect`` (data and batches, no model), ``glmlab infill`` (a model to
load weights into), the benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from glmlab.assembly.data import (
    BatchSources,
    SampleParts,
    build_batch_sources,
    build_data,
    build_eval_examples,
    build_sample_parts,
)
from glmlab.assembly.model import build_glm_model, initial_model
from glmlab.assembly.seeds import stream_seed
from glmlab.config.spec import RunSpec
from glmlab.data.pipeline import PreparedData, check_splits
from glmlab.eval.classify import label_sets
from glmlab.eval.formats import item_format
from glmlab.eval.suite import EvalSuite, SuiteSettings
from glmlab.model.attention_select import MeasureOn
from glmlab.model.glm import GLMModel
from glmlab.objective.batches import PrepareHost
from glmlab.plugin.registry import get_registry


def _same(obj: Any) -> Any:
    return obj


@dataclass
class RunParts:
    """Everything a run trains and evaluates with, built by :func:`build_run`."""

    spec: RunSpec
    device: torch.device
    data: PreparedData
    samples: SampleParts
    batches: BatchSources
    model: GLMModel
    eval_suite: EvalSuite | None

    def initial_model(self) -> GLMModel:
        """A fresh copy of the model as the run started (same seed, same backend)."""
        return initial_model(
            self.spec,
            self.data.tokenizer.padded_vocab_size,
            self.device,
            attention=self.model.attention_name,
        )


def build_eval_suite(
    spec: RunSpec,
    data: PreparedData,
    samples: SampleParts,
    device: torch.device,
    *,
    prepare_host: PrepareHost | None = None,
) -> EvalSuite:
    """The evaluation suite of a run of ``spec`` (glmlab/eval/suite.py)."""
    t = spec.train
    settings = SuiteSettings(
        items=t.eval_suite_items,
        cloze_items=t.cloze_items,
        cloze_distractors=t.cloze_distractors,
        seed=t.eval_suite_seed,
        seq_len=spec.data.seq_len,
        batch_size=t.batch_size,
        classify_items=t.classify_items,
    )
    return EvalSuite(
        build_eval_examples(spec, data),
        item_format(samples.objective, max_len=spec.data.seq_len),
        settings,
        mask_builder=samples.mask_builder,
        pad_id=samples.specials.pad,
        device=device,
        prepare_host=prepare_host,
        label_sets=label_sets(data.tokenizer.encode),
    )


def build_run(
    spec: RunSpec,
    device: torch.device,
    *,
    is_main: bool = True,
    broadcast: Callable[[Any], Any] = _same,
) -> RunParts:
    """The parts of a run of ``spec`` on ``device`` (see the module docstring). In a run of
    several processes, ``is_main`` and ``broadcast`` (rank 0's value on every rank) let
    rank 0 time ``auto``'s candidates and share its choice. Seeds torch's generator with
    ``spec.seed`` (on its ``train.stream``) before the model's parameters are drawn."""
    registry = get_registry()
    data = build_data(spec)
    check_splits(data, min_tokens=spec.data.min_tokens)
    samples = build_sample_parts(spec, data, registry)

    torch.manual_seed(stream_seed(spec))
    measure_on = MeasureOn(
        sample=lambda: build_batch_sources(spec, data, samples).train.batch(0),
        is_main=is_main,
        broadcast=broadcast,
    )
    vocab_size = data.tokenizer.padded_vocab_size
    model = build_glm_model(spec, vocab_size, device, registry=registry, measure_on=measure_on)
    prepare_host = model.attention.prepare_host
    batches = build_batch_sources(spec, data, samples, prepare_host=prepare_host)
    suite = (
        build_eval_suite(spec, data, samples, device, prepare_host=prepare_host)
        if spec.train.eval_suite
        else None
    )
    return RunParts(spec, device, data, samples, batches, model, suite)
