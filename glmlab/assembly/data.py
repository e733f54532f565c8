"""The data side of a run's assembly: the prepared data, the sample parts (objective and
mask builder), the batch sources and the evaluation suite's passages. Every plugin is
asked of the registry by name; nothing here imports a built-in plugin."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from glmlab.assembly.seeds import stream_seed
from glmlab.config.spec import RunSpec
from glmlab.data.examples import ExampleSet
from glmlab.data.pipeline import PreparedData, prepare_data
from glmlab.objective.base import Objective
from glmlab.objective.baselines import CLMObjective, MLMObjective
from glmlab.objective.batches import BatchSource, PrepareHost
from glmlab.objective.glm import GLMObjective
from glmlab.plugin.guards import CheckedMaskBuilder, checked_mask_builder
from glmlab.plugin.registry import PluginRegistry, get_registry
from glmlab.structures import SpecialTokens

log = logging.getLogger("glmlab")

VALIDATION_SEED = 12345
"""The seed of the validation batches: the same held-out batches for every seed and
variant of a sweep."""


def chunk_len(spec: RunSpec) -> int:
    """Tokens of text per row: ``seq_len`` minus the share reserved for Part B's extra
    tokens (two per span). MLM needs no reserve; CLM needs one token for the shift."""
    seq_len = spec.data.seq_len
    if spec.objective.kind == "glm":
        return max(8, int(seq_len * (1.0 - spec.data.part_b_reserve)))
    return seq_len + 1 if spec.objective.kind == "clm" else seq_len


def build_data(spec: RunSpec) -> PreparedData:
    """The run's corpus, tokenizer and example sets (cached: glmlab/data/pipeline.py)."""
    d = spec.data
    return prepare_data(
        d.corpus,
        d.corpus_options,
        vocab_size=d.vocab_size,
        n_sentinels=d.n_sentinels,
        chunk_len=chunk_len(spec),
        packing=d.packing,
        min_tokens=d.min_tokens,
        tokenizer_file=d.tokenizer_file,
    )


def build_eval_examples(spec: RunSpec, data: PreparedData) -> ExampleSet:
    """The test split chunked for a GLM objective, which the evaluation suite reads (never
    the validation split that the validation loss and a ladder's lr choice read; the
    validation split only when the corpus has no test split, test_fraction=0, said in the
    log): MLM and CLM runs chunk their own data differently, and the suite must read the
    same passages for every variant."""
    if spec.objective.kind != "glm":
        glm = dataclasses.replace(spec, objective=dataclasses.replace(spec.objective, kind="glm"))
        data = build_data(glm)
    if data.test is None or not len(data.test):
        log.warning(
            "the evaluation suite reads the validation split (the corpus has no test split): "
            "its items are not held out from the validation loss; set "
            "data.corpus_options.test_fraction > 0"
        )
    return data.evaluation


def build_objective(
    spec: RunSpec,
    specials: SpecialTokens,
    *,
    vocab_size: int,
    registry: PluginRegistry | None = None,
) -> Objective:
    """The objective the config selects, with span samplers from the registry."""
    registry = registry or get_registry()
    kind = spec.objective.kind
    if kind == "mlm":
        n_special = 6 + len(specials.sentinel_masks) + len(specials.sentinel_sops)
        return MLMObjective(
            specials, vocab_size=vocab_size, n_special=n_special, ratio=spec.objective.mlm_ratio
        )
    if kind == "clm":
        return CLMObjective()
    samplers = []
    for name, options in spec.objective.samplers.items():
        options = dict(options or {})
        weight = float(options.pop("weight", 1.0))
        if weight > 0:
            samplers.append((name, registry.create("span_sampler", name, **options), weight))
    return GLMObjective(
        samplers,
        specials,
        shuffle_spans=spec.objective.shuffle_spans,
        sentinels=spec.objective.sentinels,
        # "fixed": the extra table row past every real position (the reference's layout);
        # "mask": Part B keeps its mask's position, as without sentinels
        sentinel_position=spec.max_positions
        if spec.objective.sentinel_positions == "fixed"
        else None,
        task_sampling=spec.objective.task_sampling,
    )


def build_mask_builder(spec: RunSpec, registry: PluginRegistry | None = None) -> CheckedMaskBuilder:
    """The configured mask builder; every layout it builds is checked (names the plugin)."""
    name, options = spec.mask_builder
    return checked_mask_builder(name, options, registry)


@dataclass(frozen=True)
class SampleParts:
    """What turns texts into collated samples: the tokenizer's special tokens, the
    objective and the (checked) mask builder."""

    specials: SpecialTokens
    objective: Objective
    mask_builder: CheckedMaskBuilder


def build_sample_parts(
    spec: RunSpec, data: PreparedData, registry: PluginRegistry | None = None
) -> SampleParts:
    """The run's objective and mask builder, for the tokenizer of ``data``."""
    tokenizer = data.tokenizer
    return SampleParts(
        tokenizer.specials,
        build_objective(
            spec, tokenizer.specials, vocab_size=tokenizer.vocab_size, registry=registry
        ),
        build_mask_builder(spec, registry),
    )


@dataclass(frozen=True)
class BatchSources:
    """The training batches (seeded by the run's seed) and the validation batches (the
    same for every run of a sweep)."""

    train: BatchSource
    validation: BatchSource


def build_batch_sources(
    spec: RunSpec,
    data: PreparedData,
    parts: SampleParts,
    *,
    prepare_host: PrepareHost | None = None,
) -> BatchSources:
    """The run's batch sources; ``prepare_host`` is the chosen attention backend's, run on
    every batch in the collator (None: no per-batch host work, as for a sample batch that
    chooses the backend)."""
    common = dict(
        objective=parts.objective,
        mask_builder=parts.mask_builder,
        batch_size=spec.train.batch_size,
        seq_len=spec.data.seq_len,
        pad_id=parts.specials.pad,
        prepare_host=prepare_host,
    )
    return BatchSources(
        train=BatchSource(data.train, seed=stream_seed(spec), **common),
        validation=BatchSource(data.validation, seed=VALIDATION_SEED, shuffle=False, **common),
    )
