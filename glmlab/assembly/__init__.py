"""Assembly: a run's parts from its :class:`~glmlab.config.spec.RunSpec`, in one downward
pass (:func:`build_run`), with finer builders for what needs only some parts."""

from glmlab.assembly.data import (
    BatchSources,
    SampleParts,
    build_batch_sources,
    build_data,
    build_eval_examples,
    build_sample_parts,
    chunk_len,
)
from glmlab.assembly.model import build_glm_model, initial_model, model_config, resolve_device
from glmlab.assembly.run import RunParts, build_eval_suite, build_run

__all__ = [
    "BatchSources",
    "RunParts",
    "SampleParts",
    "build_batch_sources",
    "build_data",
    "build_eval_examples",
    "build_eval_suite",
    "build_glm_model",
    "build_run",
    "build_sample_parts",
    "chunk_len",
    "initial_model",
    "model_config",
    "resolve_device",
]
