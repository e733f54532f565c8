"""A trained run read back from its directory for scoring: ``config.yaml`` (the values the
weights were trained with) and the final ``weights.pt``. The tokenizer comes from the data
cache the run filled (glmlab/data/pipeline.py, ``GLMLAB_CACHE``), the objective, mask
builder and model from the same builders training used (:mod:`glmlab.assembly`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from glmlab.assembly import build_data, build_glm_model, build_sample_parts, resolve_device
from glmlab.config.spec import RunSpec, parse_config
from glmlab.data.tokenizer import GLMTokenizer
from glmlab.model.glm import GLMModel
from glmlab.objective.base import Objective
from glmlab.runs.layout import CONFIG, WEIGHTS
from glmlab.train.checkpoint import load_checkpoint

__all__ = ["LoadedRun", "load_run", "weights_of"]


@dataclass
class LoadedRun:
    """A run's model in eval mode with what reads text for it."""

    run_dir: Path
    spec: RunSpec
    tokenizer: GLMTokenizer
    objective: Objective
    mask_builder: object
    model: GLMModel
    device: torch.device
    step: int


def weights_of(run_dir: str | Path) -> Path:
    """``run_dir``'s final weights; a one-line error when it is not a run directory or
    kept no weights."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise FileNotFoundError(f"{run_dir}: not a glmlab run directory (no {CONFIG})")
    weights = run_dir / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(
            f"{run_dir} has no {WEIGHTS}: only a completed run trained with "
            "train.keep_checkpoint=final or last keeps the weights the harness scores"
        )
    return weights


def load_run(run_dir: str | Path, device: str = "auto") -> LoadedRun:
    """The model of ``run_dir`` with its final weights on ``device`` (``auto``: CUDA when
    available), its tokenizer, objective and mask builder."""
    run_dir = Path(run_dir)
    weights = weights_of(run_dir)
    try:
        cfg = OmegaConf.load(run_dir / CONFIG)
    except Exception as exc:  # YAML errors are not ValueErrors: name the file instead
        raise ValueError(f"unreadable {run_dir / CONFIG}: {type(exc).__name__}") from None
    spec = parse_config(cfg)
    where = resolve_device(device)
    data = build_data(spec)
    parts = build_sample_parts(spec, data)
    model = build_glm_model(spec, data.tokenizer.padded_vocab_size, where)
    state = load_checkpoint(weights, where)
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedRun(
        run_dir=run_dir,
        spec=spec,
        tokenizer=data.tokenizer,
        objective=parts.objective,
        mask_builder=parts.mask_builder,
        model=model,
        device=where,
        step=int(state.get("step", 0)),
    )
