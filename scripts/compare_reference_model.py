"""Train THUDM/GLM's own ``GLMModel`` (learned 2D positions) next to glmlab's model at the
same small config, from the same initial weights, on the same batches, with the same
optimizer, and print the per-step losses and gradients of both, then both models'
evaluation suites (the reference's weights scored by glmlab's suite).

The reference is not vendored: give the path of a THUDM/GLM checkout. Its model code runs
unmodified on the CPU; only what a CPU without apex/deepspeed lacks is stood in for:
apex's FusedLayerNorm (``torch.nn.LayerNorm``), deepspeed's checkpointing switch (off),
``torch._six.inf``, ``utils.print_rank_0``, and the CUDA RNG tracker's ``fork`` (a no-op:
dropout is 0). Model parallelism is the real ``mpu`` with a world of one (gloo).

Usage::

    python scripts/compare_reference_model.py /path/to/THUDM/GLM \
        [--steps 600] [--strict-steps 20] [--eval 100,300,600] [overrides ...]

``overrides`` are glmlab config overrides (default: ``+scale=cpu positional=learned_2d``,
one sample per row: ``data.packing=false``, as the reference's ``sep`` mask needs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
import types
from pathlib import Path

import torch

from glmlab.assembly.run import RunParts, build_run
from glmlab.cli.inspect import compose_config
from glmlab.config.spec import parse_config
from glmlab.model.glm import GLMModel
from glmlab.structures import Batch
from glmlab.train.schedule import lr_factor
from glmlab.train.trainer import _param_groups

BASE_OVERRIDES = ["+scale=cpu", "positional=learned_2d", "data.packing=false"]


def stand_in_modules(ref: Path) -> None:
    """Register the stand-ins for apex, deepspeed, ``torch._six`` and the reference's
    ``utils``, and a ``model`` package that loads the reference's files without running
    its ``__init__`` (which imports training-only code)."""
    ln = types.ModuleType("apex.normalization.fused_layer_norm")
    ln.FusedLayerNorm = torch.nn.LayerNorm
    apex = types.ModuleType("apex")
    apex_norm = types.ModuleType("apex.normalization")
    apex_norm.fused_layer_norm = ln
    apex.normalization = apex_norm
    ds = types.ModuleType("deepspeed")
    ds.checkpointing = types.SimpleNamespace(is_configured=lambda: False)
    six = types.ModuleType("torch._six")
    six.inf = math.inf
    utils = types.ModuleType("utils")
    utils.print_rank_0 = lambda *a, **k: None
    model_pkg = types.ModuleType("model")
    model_pkg.__path__ = [str(ref / "model")]
    sys.modules.update(
        {
            "apex": apex,
            "apex.normalization": apex_norm,
            "apex.normalization.fused_layer_norm": ln,
            "deepspeed": ds,
            "torch._six": six,
            "utils": utils,
            "model": model_pkg,
        }
    )
    sys.path.insert(0, str(ref))


class _NoFork:
    def fork(self, *_a: object, **_k: object) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def load_reference(ref: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """The reference's ``mpu`` (a model-parallel world of one) and ``model.modeling_glm``."""
    stand_in_modules(ref)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    mpu = importlib.import_module("mpu")
    mpu.initialize_model_parallel(1)
    importlib.import_module("mpu.transformer").get_cuda_rng_tracker = _NoFork
    return mpu, importlib.import_module("model.modeling_glm")


def weight_map(n_layers: int) -> dict[str, str]:
    """glmlab parameter name -> reference parameter name."""
    out = {
        "tok.weight": "word_embeddings.weight",
        "positional.pos1.weight": "transformer.position_embeddings.weight",
        "positional.pos2.weight": "transformer.block_position_embeddings.weight",
        "norm.weight": "transformer.final_layernorm.weight",
        "norm.bias": "transformer.final_layernorm.bias",
    }
    pairs = {
        "attn.norm": "input_layernorm",
        "attn.sublayer.qkv": "attention.query_key_value",
        "attn.sublayer.out": "attention.dense",
        "mlp.norm": "post_attention_layernorm",
        "mlp.sublayer.fc": "mlp.dense_h_to_4h",
        "mlp.sublayer.proj": "mlp.dense_4h_to_h",
    }
    for i in range(n_layers):
        for ours, theirs in pairs.items():
            for w in ("weight", "bias"):
                out[f"blocks.{i}.{ours}.{w}"] = f"transformer.layers.{i}.{theirs}.{w}"
    return out


def reference_model(
    modeling: types.ModuleType, model: GLMModel, *, copy: bool = True
) -> torch.nn.Module:
    """The reference's GLMModel at ``model``'s shape, with ``model``'s weights copied in
    (``copy``; else its own initialisation)."""
    c = model.config
    ref = modeling.GLMModel(
        num_layers=c.n_layers,
        vocab_size=c.vocab_size,
        hidden_size=c.dim,
        num_attention_heads=c.n_heads,
        embedding_dropout_prob=c.dropout,
        attention_dropout_prob=c.attention_dropout,
        output_dropout_prob=c.dropout,
        max_sequence_length=c.max_positions,
        max_memory_length=0,
        checkpoint_activations=False,
        parallel_output=True,
        block_position_encoding=True,
    )
    ours = dict(model.named_parameters())
    theirs = dict(ref.named_parameters())
    mapping = weight_map(c.n_layers)
    if set(mapping) != set(ours) or set(mapping.values()) != set(theirs):
        raise SystemExit(
            f"parameter sets differ: glmlab-only {sorted(set(ours) - set(mapping))}, "
            f"reference-only {sorted(set(theirs) - set(mapping.values()))}"
        )
    if copy:
        with torch.no_grad():
            for a, b in mapping.items():
                theirs[b].copy_(ours[a])
    return ref


def init_report(modeling: types.ModuleType, model: GLMModel) -> list[str]:
    """Per parameter: the std of glmlab's initial value and of a freshly built reference
    model's (its own init, not copied), to compare the two initialisations."""
    fresh = reference_model(modeling, model, copy=False)
    theirs = dict(fresh.named_parameters())
    lines = []
    for a, b in weight_map(model.config.n_layers).items():
        pa = dict(model.named_parameters())[a].detach()
        lines.append(
            f"  {a:34s} glmlab std {float(pa.std()):.5f} mean {float(pa.mean()):+.5f}   "
            f"reference std {float(theirs[b].detach().std()):.5f} mean {float(theirs[b].detach().mean()):+.5f}"
        )
    return lines


def reference_loss(mpu: types.ModuleType, ref: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The reference's pretraining loss: vocab-parallel CE, ``sum(CE * mask) / sum(mask)``;
    its mask from one ``sep`` per row (the row's only sample)."""
    segs = batch.layout.segments
    if len({s[0] for s in segs}) != len(segs):
        raise SystemExit("a row holds several samples: run with data.packing=false")
    sep = torch.tensor([s[3] for s in sorted(segs)], dtype=torch.long)
    logits, *_ = ref(batch.input_ids, batch.position_ids, sep)
    losses = mpu.vocab_parallel_cross_entropy(logits.contiguous().float(), batch.target_ids)
    mask = batch.loss_mask.reshape(-1).float()
    return torch.sum(losses.reshape(-1) * mask) / mask.sum()


def optimizer(model: torch.nn.Module, parts: RunParts) -> tuple[torch.optim.Optimizer, object]:
    """The run's AdamW (glmlab's parameter groups = the reference's: biases and LayerNorm
    weights undecayed) and learning-rate schedule."""
    t = parts.spec.train
    opt = torch.optim.AdamW(_param_groups(model, t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: lr_factor(
            s, warmup_steps=t.warmup_steps, max_steps=t.max_steps, min_lr_ratio=t.min_lr_ratio
        ),
    )
    return opt, sched


def grad_diffs(model: GLMModel, ref: torch.nn.Module) -> tuple[float, float, str]:
    """Largest relative gradient difference over parameters, its parameter, and the
    position tables' gradient norm."""
    theirs = dict(ref.named_parameters())
    worst, where = 0.0, ""
    for a, b in weight_map(model.config.n_layers).items():
        ga, gb = dict(model.named_parameters())[a].grad, theirs[b].grad
        rel = float((ga - gb).norm() / gb.norm().clamp_min(1e-12))
        if rel > worst:
            worst, where = rel, a
    pos = math.sqrt(
        sum(float(p.grad.pow(2).sum()) for n, p in model.named_parameters() if "positional" in n)
    )
    return worst, pos, where


def suite_line(parts: RunParts, model: GLMModel) -> str:
    m = parts.eval_suite.run(model)
    keys = ("infill_token_loss", "infill_sentence_loss", "doc_gen_loss", "cloze_acc")
    return " ".join(f"{k}={m[k]:.3f}" for k in keys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("reference", type=Path, help="a THUDM/GLM checkout")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--strict-steps", type=int, default=20, help="steps printed one by one")
    p.add_argument("--eval", default="100,300,600", help="steps after which both are evaluated")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    torch.set_num_threads(1)
    mpu, modeling = load_reference(args.reference)
    spec = parse_config(
        compose_config(
            [
                *BASE_OVERRIDES,
                f"train.max_steps={args.steps}",
                "train.progress=false",
                *args.overrides,
            ]
        )
    )
    parts = build_run(spec, torch.device("cpu"))
    ours = parts.model
    print("initialisation (glmlab's own vs the reference's own):")
    print("\n".join(init_report(modeling, ours)))
    ref = reference_model(modeling, ours)
    opt_a, sched_a = optimizer(ours, parts)
    opt_b, sched_b = optimizer(ref, parts)
    evals = {int(s) for s in args.eval.split(",") if s}
    clip = spec.train.grad_clip
    print(f"glmlab {spec.positional} vs THUDM/GLM GLMModel(block_position_encoding=True)")
    for step in range(args.steps):
        batch = parts.batches.train.batch(step)
        la = ours.loss(batch)
        lb = reference_loss(mpu, ref, batch)
        la.backward()
        lb.backward()
        if step < args.strict_steps or step % 50 == 0:
            worst, pos, where = grad_diffs(ours, ref)
            print(
                f"step {step:4d} loss glmlab {la.item():.6f} reference {lb.item():.6f} "
                f"|diff| {abs(la.item() - lb.item()):.1e}  max rel grad diff {worst:.1e} "
                f"({where})  position-table grad norm {pos:.3e}",
                flush=True,
            )
        for model, opt, sched in ((ours, opt_a, sched_a), (ref, opt_b, sched_b)):
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        if step + 1 in evals:
            copy = parts.initial_model()
            names = weight_map(ours.config.n_layers)
            theirs = dict(ref.named_parameters())
            with torch.no_grad():
                for a, q in copy.named_parameters():
                    q.copy_(theirs[names[a]])
            print(f"EVAL {step + 1} glmlab    {suite_line(parts, ours)}", flush=True)
            print(f"EVAL {step + 1} reference {suite_line(parts, copy)}", flush=True)
            ours.train()
            ref.train()


if __name__ == "__main__":
    main()
