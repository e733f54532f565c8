"""``attention: auto`` on CUDA: time every backend that can run the run, take the fastest.

Before the first step, each candidate backend (registered, available on the device, taking
the positional scheme's attention bias when there is one, and not the ``eager`` reference)
runs ``attend`` forward and backward on the run's own shape, dtype and a real batch layout,
a few times within a total budget (``budget_s``, 2 s by default; a backend's first call,
which compiles flex's kernel, is not counted). The fastest wins; backends within
``tie_tolerance`` of it count as tied and :data:`glmlab.model.attention_candidates.AUTO_CUDA_PREFERENCE`
decides between them. A backend that raises while timed (an unsupported dtype or head dim,
a missing kernel) is skipped with a warning.

The decision is cached as JSON under ``<glmlab cache>/attention_select/``, keyed by the GPU
model, the torch / CUDA / xformers / glmlab versions, the shape (batch, heads, length, head
dim, dtype, bias) and the candidate set, so later runs of that shape reuse it. In a run of
several processes rank 0 measures (or reads the cache) and broadcasts its decision: every
rank runs the same backend and only one process writes the cache.

On the CPU ``auto`` is not measured: it stays ``sdpa`` (:func:`glmlab.model.build.resolve_attention`).
Timing is injected (``timer``), so the selection logic is tested on the CPU.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from einops import rearrange

import glmlab
from glmlab.data.cache import cache_dir, cache_key
from glmlab.io import write_json_atomic
from glmlab.model.attention_candidates import (
    AttentionRequest,
    backend_candidates,
)
from glmlab.plugin.registry import PluginRegistry
from glmlab.structures import AttentionLayout, Batch

log = logging.getLogger("glmlab")

BUDGET_S = 2.0
TIE_TOLERANCE = 0.03  # within 3% of the fastest: a tie, decided by the preference order
MAX_TIMED_CALLS = 10
CACHE_SUBDIR = "attention_select"

Timer = Callable[[str], float]  # backend name -> ms per forward + backward (raises if it cannot)


@dataclass
class AttentionSelection:
    """Which backend a run uses and why: ``method`` is ``measured`` (timed now), ``cached``
    (timed by an earlier run of this shape), ``default`` (not timed: the CPU, or no
    measurement possible) or ``explicit`` (named in the config)."""

    backend: str
    method: str
    requested: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    shape: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttentionSelection:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        """One line: the choice, how it was made, and the timings fastest first."""
        timed = ", ".join(
            f"{name} {ms:.3g} ms"
            for name, ms in sorted(self.timings_ms.items(), key=lambda x: x[1])
        )
        skipped = "; ".join(f"{name}: {why}" for name, why in self.skipped.items())
        return (
            f"attention {self.backend} ({self.method}, requested {self.requested!r})"
            + (f"; fwd+bwd {timed}" if timed else "")
            + (f"; not timed: {skipped}" if skipped else "")
        )


@dataclass
class MeasureOn:
    """What ``auto`` measures on, and how the ranks of a run share the decision.

    ``sample``: builds one batch of the run (only rank 0 calls it). ``broadcast``: rank 0's
    value on every rank (identity in a single process). ``use_cache``: read and write the
    decision cache.
    """

    sample: Callable[[], Batch]
    dtype: torch.dtype = torch.bfloat16
    is_main: bool = True
    broadcast: Callable[[Any], Any] = lambda obj: obj
    use_cache: bool = True
    budget_s: float = BUDGET_S


def should_measure(requested: str, device: torch.device, measure_on: MeasureOn | None) -> bool:
    """Whether a run times its backends: ``auto``, on CUDA, with something to measure on.
    An explicit backend is obeyed; the CPU keeps ``auto``'s fixed choice."""
    return requested == "auto" and device.type == "cuda" and measure_on is not None


def fastest(
    timings: Mapping[str, float], preference: Sequence[str], tie_tolerance: float = TIE_TOLERANCE
) -> str:
    """The fastest name in ``timings``; names within ``tie_tolerance`` (relative) of it are
    tied, and the first of those in ``preference`` (then the faster, then by name) wins."""
    if not timings:
        raise ValueError("no timings to choose from")
    best = min(timings.values())
    tied = [name for name, ms in timings.items() if ms <= best * (1 + tie_tolerance)]
    rank = {name: i for i, name in enumerate(preference)}
    return min(tied, key=lambda name: (rank.get(name, len(rank)), timings[name], name))


def time_candidates(
    candidates: Sequence[str], timer: Timer
) -> tuple[dict[str, float], dict[str, str]]:
    """``timer`` on every candidate: (ms by name, reason by skipped name). A candidate whose
    timing raises or is not a positive finite number is skipped with a warning."""
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in candidates:
        try:
            ms = float(timer(name))
        except Exception as e:  # any failure of one backend must not stop the run
            skipped[name] = f"failed while timed: {type(e).__name__}: {e}"
            log.warning("attention auto: backend '%s' %s; skipped", name, skipped[name])
            continue
        if not (math.isfinite(ms) and ms > 0):
            skipped[name] = f"timed at {ms} ms"
            log.warning("attention auto: backend '%s' %s; skipped", name, skipped[name])
            continue
        timings[name] = ms
    return timings, skipped


class SelectionCache:
    """Decisions on disk, one JSON file per key (written atomically)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_dir()) / CACHE_SUBDIR

    def path(self, key: Mapping[str, Any]) -> Path:
        return self.root / f"{cache_key(dict(key))}.json"

    def load(self, key: Mapping[str, Any]) -> AttentionSelection | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if entry.get("key") != json.loads(json.dumps(dict(key), default=str)):
                return None  # a hash collision or an edited file: measure again
            return AttentionSelection.from_dict(entry["selection"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("attention auto: unreadable cache entry %s (%s); measuring again", path, e)
            return None

    def store(self, key: Mapping[str, Any], selection: AttentionSelection) -> None:
        """Write the decision; a cache that cannot be written costs a warning, not the run."""
        try:
            write_json_atomic(self.path(key), {"key": dict(key), "selection": selection.as_dict()})
        except OSError as e:
            log.warning("attention auto: decision not cached (%s)", e)


def choose(
    candidates: Sequence[str],
    timer: Timer,
    *,
    preference: Sequence[str],
    key: Mapping[str, Any],
    cache: SelectionCache | None,
    not_candidates: Mapping[str, str] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> AttentionSelection:
    """The ``auto`` decision among ``candidates``: from ``cache`` when it holds one for
    ``key`` naming a current candidate, else timed with ``timer`` (and stored). When no
    candidate could be timed, the first of ``preference`` (else of ``candidates``) is taken,
    as ``default``, and nothing is cached. ``not_candidates``: registered backends left out,
    with the reason (recorded in the selection)."""
    if not candidates:
        raise ValueError(
            f"attention 'auto': no backend to choose from ({dict(not_candidates or {})})"
        )
    shape = dict(key.get("shape", {}))
    if cache is not None and (hit := cache.load(key)) is not None and hit.backend in candidates:
        hit.method = "cached"
        return hit
    timings, skipped = time_candidates(candidates, timer)
    skipped = {**dict(not_candidates or {}), **skipped}
    if not timings:
        backend = next((n for n in preference if n in candidates), candidates[0])
        log.warning("attention auto: no backend could be timed; using '%s'", backend)
        return AttentionSelection(backend, "default", "auto", {}, skipped, shape)
    selection = AttentionSelection(
        fastest(timings, preference, tie_tolerance), "measured", "auto", timings, skipped, shape
    )
    if cache is not None:
        cache.store(key, selection)
    return selection


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_backward_timer(
    registry: PluginRegistry,
    options: Mapping[str, Any],
    layout: AttentionLayout,
    *,
    n_heads: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device,
    bias: torch.Tensor | None,
    budget_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> Timer:
    """A :data:`Timer`: ms of one ``attend`` forward + backward of a backend on ``layout``'s
    shape, with q, k, v laid out as the model's qkv projection makes them (views of one
    (B, L, 3 * H * D) tensor). One untimed call, then the median of up to
    :data:`MAX_TIMED_CALLS` calls within ``budget_s``."""
    B, L = layout.batch_size, layout.seq_len

    def time_backend(name: str) -> float:
        backend = registry.create("attention", name, **options)
        host_prepared = backend.prepare_host(layout)
        on_device = dataclasses.replace(layout, host_prepared=host_prepared, _cache={}).to(device)
        prepared = backend.prepare(on_device)
        qkv = torch.randn(B, L, 3 * n_heads * head_dim, device=device, dtype=dtype)
        qkv.requires_grad_()
        q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=n_heads)
        grad = torch.randn_like(q)
        extra = {} if bias is None else {"bias": bias}

        def call() -> float:
            start = clock()
            out = backend.attend(q, k, v, prepared, **extra)
            torch.autograd.grad(out, qkv, grad)
            _sync(device)
            return clock() - start

        call()  # warm-up: allocations, flex's kernel compilation
        first = call()
        n = max(1, min(MAX_TIMED_CALLS - 1, int(budget_s / max(first, 1e-6)) - 1))
        return 1e3 * statistics.median([first, *(call() for _ in range(n))])

    return time_backend


def selection_key(
    device: torch.device,
    shape: Mapping[str, Any],
    candidates: Sequence[str],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """The cache key of a decision: hardware, versions, shape, candidates and options."""

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    return {
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "xformers": version("xformers"),
        "glmlab": glmlab.__version__,
        "shape": dict(shape),
        "candidates": sorted(candidates),
        "options": dict(options),
    }


def measure_auto(request: AttentionRequest, measure_on: MeasureOn) -> AttentionSelection:
    """``auto``'s decision for a run on ``device`` (module docstring): rank 0 times or reads
    the cache, every rank gets its decision. The table is logged on rank 0."""
    decision: dict[str, Any] | None = None
    failure: Exception | None = None
    if measure_on.is_main:
        try:
            decision = _decide_on_main(request, measure_on).as_dict()
        except Exception as e:  # the other ranks wait for a decision: send them the error
            failure, decision = e, {"error": f"{type(e).__name__}: {e}"}
    shared = measure_on.broadcast(decision)
    if "error" in shared:
        raise RuntimeError(f"attention 'auto' failed on rank 0: {shared['error']}") from failure
    return AttentionSelection.from_dict(shared)


def _decide_on_main(request: AttentionRequest, measure_on: MeasureOn) -> AttentionSelection:
    """Rank 0's part of :func:`measure_auto`: candidates, sample, timer, decision."""
    registry, options, device = request.registry, request.options, request.device
    n_heads, head_dim = request.n_heads, request.head_dim
    needs_bias, needs_dropout = request.needs_bias, request.needs_dropout
    candidates, left_out = backend_candidates(
        registry,
        device,
        options=options,
        needs_bias=needs_bias,
        needs_dropout=needs_dropout,
        timed=True,
    )
    batch = measure_on.sample()
    layout = batch.layout
    bias = None
    if request.make_bias is not None and needs_bias:
        with torch.no_grad():
            bias = request.make_bias(batch.position_ids.to(device))
    shape = {
        "batch_size": layout.batch_size,
        "seq_len": layout.seq_len,
        "n_heads": n_heads,
        "head_dim": head_dim,
        "dtype": str(measure_on.dtype).removeprefix("torch."),
        "bias": needs_bias,
        "dropout": needs_dropout,
    }
    timer = forward_backward_timer(
        registry,
        options,
        layout,
        n_heads=n_heads,
        head_dim=head_dim,
        dtype=measure_on.dtype,
        device=device,
        bias=bias,
        budget_s=measure_on.budget_s / max(1, len(candidates)),
    )
    with torch.enable_grad():
        selection = choose(
            candidates,
            timer,
            preference=request.preference,
            key=selection_key(device, shape, candidates, options),
            cache=SelectionCache() if measure_on.use_cache else None,
            not_candidates=left_out,
        )
    log.info("%s", selection.summary())
    return selection
