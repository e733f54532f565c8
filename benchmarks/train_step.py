"""Training-step throughput: glmlab's GLM step against a nanoGPT-style causal-LM step of the
same shape, measured in the same run.

Both steps are what a training loop does per micro-batch: bf16 autocast (CUDA), forward and
loss (``torch.compile``d on CUDA unless ``--no-compile``), backward, gradient clipping and a
fused AdamW step. The GLM step is ``GLMModel.loss`` on batches from glmlab's data path (token
spans, random ids; the backend's ``prepare_host`` run in the collator), pre-built and pinned so
that data loading is not timed (``benchmarks/collate.py`` measures it). The baseline is
nanoGPT's model: pre-LN, tanh-GELU MLP, learned positions, tied head over every position,
SDPA ``is_causal``.

MFU counts the FLOPs each step performs, against 989 TFLOP/s (H100 SXM, bf16 dense):
6 x (transformer-block parameters) x tokens, plus 6 x dim x vocab x (positions where the
head runs: the loss positions for GLM, every position for the baseline), plus
12 x layers x dim x (query, key pairs the mask allows).

    python benchmarks/train_step.py --json                 # CUDA: GLM-Base and GLM-Large
    python benchmarks/train_step.py --device cpu --quick   # smoke test, tiny shape
    python benchmarks/train_step.py --shapes large --seconds 4 --warmup 3 --out r.jsonl

Compiled, the first step compiles (``first_step_s``); the dimensions that vary between the
pre-built batches are marked dynamic first, so one compilation serves them all.

Targets (docs/PERFORMANCE.md): GLM >= 1.10x the baseline's tokens/s at GLM-Base and
GLM-Large, with peak memory no higher than the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.attention import allowed_pairs
from benchmarks.collate import make_source
from benchmarks.common import append_jsonl, emit, environment
from glmlab.model.attention_select import MeasureOn
from glmlab.model.build import build_model
from glmlab.model.glm import GLMConfig
from glmlab.objective.batches import BatchSource, PrepareHost
from glmlab.structures import Batch

PEAK_FLOPS = {"cuda": 989e12}  # H100 SXM bf16 dense; other devices: MFU not reported
SHAPES = {  # name: (layers, dim, heads)
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
    "tiny": (2, 64, 2),
}
VOCAB = 30592  # GLM's BERT vocabulary (30,522) rounded up to a multiple of 64


class CausalBlock(nn.Module):
    """nanoGPT's block: x + attn(ln(x)), x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.heads, C // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.proj(y.transpose(1, 2).reshape(B, L, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class CausalLM(nn.Module):
    """The baseline: nanoGPT's GPT with a tied head over every position."""

    def __init__(self, layers: int, dim: int, heads: int, vocab: int, seq_len: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList(CausalBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        x, y = ids[:, :-1], ids[:, 1:]
        h = self.tok(x) + self.pos(torch.arange(x.shape[1], device=x.device))
        for block in self.blocks:
            h = block(h)
        logits = F.linear(self.norm(h), self.tok.weight)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


def block_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.blocks.parameters())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    step: Callable[[int], None], device: torch.device, warmup: int, seconds: float, min_steps: int
) -> tuple[float, int, float, float]:
    """Seconds per step over ``seconds`` (at least ``min_steps``) after ``warmup`` steps (at
    least one), with the seconds of the first step (compilation) and of the whole warm-up.
    The device is synchronised every 10 steps (as a loop's periodic metric sync would be)
    and at the end, not per step, so host and device work overlap as in training."""
    start = time.perf_counter()
    step(0)
    _sync(device)
    first_s = time.perf_counter() - start
    for i in range(1, warmup):
        step(i)
    _sync(device)
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start, n = time.perf_counter(), 0
    while n < min_steps or time.perf_counter() - start < seconds:
        step(n)
        n += 1
        if device.type == "cuda" and n % 10 == 0:
            torch.cuda.synchronize(device)  # bound the queue so the clock stays honest
    _sync(device)
    return (time.perf_counter() - start) / n, n, first_s, warmup_s


def make_step(
    loss_fn: Callable[[Any], torch.Tensor],
    model: nn.Module,
    inputs: list[Any],
    device: torch.device,
    on_device: Callable[[Any], None] = lambda x: None,
) -> Callable[[int], None]:
    """One optimizer step on ``inputs[i % len(inputs)]`` (moved to ``device`` each time,
    then handed to ``on_device``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def autocast() -> contextlib.AbstractContextManager:
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(i: int) -> None:
        x = inputs[i % len(inputs)].to(device, non_blocking=True)
        on_device(x)
        with autocast():
            loss = loss_fn(x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def glm_source(prepare_host: PrepareHost | None, args: argparse.Namespace) -> BatchSource:
    """Token-span GLM batches of the benchmark's shape (``prepare_host``: the chosen
    attention backend's, run in the collator)."""
    return make_source(
        "token",
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        n_texts=args.batch_size * args.batches,
        prepare_host=prepare_host,
        vocab=args.vocab,
    )


def glm_batches(
    prepare_host: PrepareHost, args: argparse.Namespace, device: torch.device
) -> list[Batch]:
    source = glm_source(prepare_host, args)
    batches = [source.batch(i) for i in range(args.batches)]
    return [b.pin_memory() for b in batches] if device.type == "cuda" else batches


def batch_tensors(batch: Batch) -> dict[str, torch.Tensor]:
    """A batch's tensors by name, the backend's ``prepare_host`` result included."""
    named = {
        name: getattr(batch, name)
        for name in ("input_ids", "position_ids", "target_ids", "loss_mask", "loss_positions")
    }
    named["segment_ids"], named["prefix_end"] = batch.layout.segment_ids, batch.layout.prefix_end
    host = batch.layout.host_prepared
    named |= {f"host.{k}": v for k, v in host.items() if isinstance(v, torch.Tensor)}
    return named


def varying_dims(batches: list[Batch]) -> dict[str, list[int]]:
    """Per tensor name, the dimensions whose size differs between ``batches`` (the number
    of loss positions, the index lengths of the ``prepare_host`` result): marked dynamic before the first
    compiled step, so that one compilation serves every batch instead of a recompilation
    at the first batch of another size."""
    shapes: dict[str, set[tuple[int, ...]]] = {}
    for batch in batches:
        for name, t in batch_tensors(batch).items():
            shapes.setdefault(name, set()).add(tuple(t.shape))
    return {
        name: [d for d in range(len(next(iter(s)))) if len({shape[d] for shape in s}) > 1]
        for name, s in shapes.items()
        if len(s) > 1 and len({len(shape) for shape in s}) == 1
    }


def mark_dynamic(dims: dict[str, list[int]]) -> Callable[[Batch], None]:
    """Marks ``dims`` (:func:`varying_dims`) dynamic on a batch's tensors; "maybe": should
    the compiled code need a size as a constant after all, it recompiles instead of failing."""

    def mark(batch: Batch) -> None:
        tensors = batch_tensors(batch)
        for name, ds in dims.items():
            torch._dynamo.maybe_mark_dynamic(tensors[name], ds)

    return mark


def run_shape(shape: str, args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    layers, dim, heads = SHAPES[shape]
    L, B, vocab = args.seq_len, args.batch_size, args.vocab
    compile_ = args.compile if args.compile is not None else device.type == "cuda"
    peak = PEAK_FLOPS.get(device.type)
    results = []

    def record(name: str, model: nn.Module, step: Callable[[int], None], flops: float) -> None:
        per_step, steps, first_s, warmup_s = measure(
            step, device, args.warmup, args.seconds, args.min_steps
        )
        results.append(
            {
                "benchmark": "train_step",
                "model": name,
                "shape": shape,
                "layers": layers,
                "dim": dim,
                "heads": heads,
                "seq_len": L,
                "batch_size": B,
                "vocab": vocab,
                "compile": compile_,
                "params": sum(p.numel() for p in model.parameters()),
                "step_ms": per_step * 1e3,
                "steps": steps,
                "first_step_s": first_s,  # compilation included
                "warmup_s": warmup_s,
                "tokens_per_s": B * L / per_step,
                "mfu": flops / per_step / peak if peak else None,
                "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30
                if device.type == "cuda"
                else None,
            }
        )

    torch.manual_seed(0)
    baseline = CausalLM(layers, dim, heads, vocab, L).to(device)
    ids = [torch.randint(0, vocab, (B, L + 1)) for _ in range(args.batches)]
    if device.type == "cuda":
        ids = [t.pin_memory() for t in ids]  # as a loader would hand them over
    loss_fn = torch.compile(baseline.loss) if compile_ else baseline.loss
    causal_pairs = B * L * (L + 1) // 2
    flops = 6 * block_params(baseline) * B * L + 6 * dim * vocab * B * L
    flops += 12 * layers * dim * causal_pairs
    record("causal_baseline", baseline, make_step(loss_fn, baseline, ids, device), flops)
    del baseline, loss_fn

    # The run's assembly order (glmlab/assembly/run.py): the model, whose attention backend
    # ``auto`` on CUDA times on a batch of this shape, then the batches with its prepare_host.
    config = GLMConfig(vocab_size=vocab, n_layers=layers, dim=dim, n_heads=heads, max_positions=L)
    measure_on = MeasureOn(sample=lambda: glm_source(None, args).batch(0))
    glm = build_model(
        config,
        positional="learned_2d",
        norm_layout="pre_ln",
        attention=args.attention,
        device=device,
        measure_on=measure_on,
    )
    batches = glm_batches(glm.attention.prepare_host, args, device)
    loss_fn = torch.compile(glm.loss) if compile_ else glm.loss
    on_device = mark_dynamic(varying_dims(batches)) if compile_ else lambda batch: None
    head = sum(b.n_loss_tokens for b in batches) / len(batches)
    pairs = sum(allowed_pairs(b.layout) for b in batches) / len(batches)
    flops = 6 * block_params(glm) * B * L + 6 * dim * vocab * head + 12 * layers * dim * pairs
    record("glmlab", glm, make_step(loss_fn, glm, batches, device, on_device), flops)
    results[-1]["attention"] = glm.attention_name
    results[-1]["attention_selection"] = glm.attention_selection.as_dict()
    results[-1]["vs_baseline_tokens_per_s"] = (
        results[-1]["tokens_per_s"] / results[0]["tokens_per_s"]
    )
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=["base", "large"])
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--vocab", type=int, default=VOCAB)
    p.add_argument("--attention", default="auto", help="glmlab backend (default: auto)")
    p.add_argument("--batches", type=int, default=8, help="distinct pre-built batches cycled")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--min-steps", type=int, default=20)
    compile_ = p.add_mutually_exclusive_group()
    compile_.add_argument("--compile", dest="compile", action="store_true", default=None)
    compile_.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--quick", action="store_true", help="tiny shape and times (CPU smoke test)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", metavar="FILE", help="also append each shape's rows to this JSONL file")
    args = p.parse_args(argv)
    if args.quick:
        args.shapes, args.seq_len, args.batch_size, args.vocab = ["tiny"], 64, 4, 512
        args.batches, args.warmup, args.seconds, args.min_steps = 2, 1, 0.0, 2
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = torch.device(args.device)
    env = environment(device)
    rows = []
    for shape in args.shapes:
        rows += [{**r, **env} for r in run_shape(shape, args, device)]
        append_jsonl(args.out, rows[-2:])
    emit(
        rows,
        args.json,
        [
            "shape",
            "model",
            "attention",
            "tokens_per_s",
            "vs_baseline_tokens_per_s",
            "mfu",
            "step_ms",
            "peak_mem_gb",
        ],
    )
    return rows


if __name__ == "__main__":
    main()
