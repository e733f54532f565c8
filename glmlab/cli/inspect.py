"""``glmlab inspect [OVERRIDES...]``: one training sample of any config, as the model sees it.

The sample comes from the training batches built by the run's own assembly
(:func:`glmlab.assembly.build_batch_sources`: same objective, span samplers, mask builder
and seed; no model is built); the table shows every token with its
part, both position rows, its target and its loss weight, and the attention mask is drawn
as text in the terminal and as a PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from glmlab.assembly import build_batch_sources, build_data, build_sample_parts
from glmlab.cli.text import printable
from glmlab.config.scale import resolve_scale
from glmlab.config.spec import parse_config
from glmlab.objective.batches import collate_rows
from glmlab.plugin.registry import get_registry
from glmlab.runs.naming import register_resolvers
from glmlab.structures import GLMSample


@dataclass(frozen=True)
class Inspection:
    """One sample, its token strings and its attention mask (``mask[q, k]``: q sees k)."""

    sample: GLMSample
    tokens: list[str]
    targets: list[str]  # "" where the loss mask is 0
    mask: np.ndarray
    samples_in_row: int


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``python -m glmlab OVERRIDES`` would run (without Hydra's own node): the
    same scale (``scale=auto`` by default, :func:`glmlab.config.scale.resolve_scale`)."""
    register_resolvers()
    overrides, _ = resolve_scale(overrides)
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def token_text(tokenizer: object, token_id: int) -> str:
    """One token, printable: spaces as ␣, control characters escaped (:func:`printable`)."""
    return printable(tokenizer.decode([int(token_id)])).replace(" ", "␣")


def inspect_sample(cfg: DictConfig, *, batch: int = 0, row: int = 0, index: int = 0) -> Inspection:
    """Sample ``index`` of row ``row`` of training batch ``batch`` for ``cfg``."""
    spec = parse_config(cfg)
    # The sample needs no model, but a misspelt plugin name must fail here as in a run.
    registry = get_registry()
    for kind, (name, _) in (
        ("positional", spec.positional),
        ("norm_layout", spec.norm_layout),
        ("attention", spec.attention),
    ):
        if not (kind == "attention" and name == "auto"):
            registry.get(kind, name)
    data = build_data(spec)
    tok = data.tokenizer
    parts = build_sample_parts(spec, data, registry)
    source = build_batch_sources(spec, data, parts).train
    if not 0 <= row < spec.train.batch_size:
        raise ValueError(f"row must be in [0, {spec.train.batch_size}), got {row}")
    samples = source.rows(batch)[row]
    if not 0 <= index < len(samples):
        raise ValueError(f"row {row} of batch {batch} holds {len(samples)} samples; got {index}")
    sample = samples[index]
    layout = collate_rows(
        [[sample]], seq_len=len(sample), pad_id=tok.specials.pad, mask_builder=parts.mask_builder
    ).layout
    tokens = [token_text(tok, i) for i in sample.input_ids]
    targets = [
        token_text(tok, t) if w else ""
        for t, w in zip(sample.target_ids, sample.loss_mask, strict=True)
    ]
    return Inspection(sample, tokens, targets, layout.dense_mask()[0].numpy(), len(samples))


def _parts(sample: GLMSample) -> list[str]:
    # "A" before sep; in Part B the span number, counted at each [sop] (position 2 == 1).
    out, span = [], 0
    for i in range(len(sample)):
        if i < sample.sep:
            out.append("A")
            continue
        if sample.position_ids[1, i] == 1:
            span += 1
        out.append(f"B{span}" if span else "B")
    return out


def render_table(ins: Inspection) -> str:
    """The sample as a text table: index, token, part, pos1, pos2, target, loss mask."""
    s = ins.sample
    rows = [("i", "token", "part", "pos1", "pos2", "target", "loss")]
    for i, (tok, part, target) in enumerate(zip(ins.tokens, _parts(s), ins.targets, strict=True)):
        rows.append(
            (
                str(i),
                tok,
                part,
                str(s.position_ids[0, i]),
                str(s.position_ids[1, i]),
                target,
                f"{s.loss_mask[i]:g}",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def render_mask_art(mask: np.ndarray, sep: int, max_width: int = 96) -> str:
    """The mask as text: █ = the query (row) sees the key (column), · = it does not; │ and
    ─ mark the end of Part A. Longer samples are drawn in blocks of tokens (a block is
    filled if any query in it sees any key in it)."""
    n = mask.shape[0]
    block = max(1, math.ceil(n / max_width))
    cells = -(-n // block)
    grid = np.zeros((cells, cells), dtype=bool)
    for q in range(cells):
        for k in range(cells):
            grid[q, k] = mask[q * block : (q + 1) * block, k * block : (k + 1) * block].any()
    cut = sep // block if 0 < sep < n else None
    lines = [f"attention mask: {n} x {n} tokens" + (f", {block} per cell" if block > 1 else "")]
    for q in range(cells):
        if q == cut:
            lines.append("─" * cut + "┼" + "─" * (cells - cut))
        chars = ["█" if v else "·" for v in grid[q]]
        if cut is not None:
            chars.insert(cut, "│")
        lines.append("".join(chars))
    return "\n".join(lines)


def save_mask_png(ins: Inspection, path: str | Path, title: str) -> bool:
    """The mask as a PNG with Part A / Part B boundaries; False without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    n = len(ins.sample)
    size = min(14.0, max(5.0, n / 9))
    fig = Figure(figsize=(size, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(ins.mask, cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest")
    if 0 < ins.sample.sep < n:
        for draw in (ax.axhline, ax.axvline):
            draw(ins.sample.sep - 0.5, color="#c0392b", linewidth=1.5)
    if n <= 64:  # token labels only while they stay readable
        ax.set_xticks(range(n), ins.tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(n), ins.tokens, fontsize=7)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return True
