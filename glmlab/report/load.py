"""Reading a sweep directory: its runs (typed :class:`~glmlab.runs.result.RunResult` records),
grouped into variants, with the baseline and the verdict metrics. The one loading path:
the report, ``compare`` and the results table (:mod:`glmlab.report.table`) all read a
sweep through :func:`load_sweep`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from glmlab.io import flatten, read_json, read_jsonl
from glmlab.ladder.roles import ROLE_KEY, ladder_roles
from glmlab.report.metrics import METRICS, OUTCOME_METRICS
from glmlab.runs.layout import (
    CONFIG,
    EVAL_ITEMS,
    HARNESS_ITEMS,
    MULTIRUN,
    RESULT,
    UNFINISHED,
    RunStatus,
    iter_run_dirs,
    read_overrides,
)
from glmlab.runs.layout import METRICS as METRICS_FILE
from glmlab.runs.metrics import last_step
from glmlab.runs.naming import variant_overrides
from glmlab.runs.result import RunResult, read_result

__all__ = [
    "Run",
    "Sweep",
    "Variant",
    "differing_config",
    "differing_overrides",
    "find_variant",
    "load_sweep",
    "read_run",
    "show_value",
    "variant_label",
]

log = logging.getLogger("glmlab")

DEFAULT_METRIC = "final_val_loss"
INTERRUPTED = "no result.json: the run was interrupted; rerun the sweep to resume it"


@dataclass
class Run:
    """One run directory: its result (``unfinished`` when a run was cut off before writing
    one) and, on demand, its final metrics, per-item scores, loss curves and config."""

    dir: Path
    result: RunResult

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def seed(self) -> Any:
        return self.result.seed

    @cached_property
    def metrics(self) -> dict[str, float]:
        """Final metric values of a completed run: ``final_val_loss``, the suite's, the
        harness's, its compute and supervision, its stability, and ``stalled`` (1 when its
        token infilling loss is not below the unigram level of the same items); of a
        diverged run, its stability alone and ``stalled`` 1: a report counts it
        (:data:`OUTCOME_METRICS`)."""
        stability = self.result.stability or {}
        if self.status == RunStatus.DIVERGED:
            values = {k: v for k, v in stability.items() if k in OUTCOME_METRICS}
            values = {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
            return {**values, "stalled": 1.0}
        if self.status != RunStatus.COMPLETED:
            return {}
        evaluation = self.result.eval or {}
        unigram = ((self.eval_items.get("reference_metrics") or {}).get("unigram") or {}).get(
            "infill_token_loss"
        )
        stalled = {}
        if unigram is not None and "infill_token_loss" in evaluation:
            stalled["stalled"] = float(evaluation["infill_token_loss"] >= unigram)
        values = {
            "final_val_loss": self.result.final_val_loss,
            **evaluation,
            **(self._harness.get("metrics") or {}),
            **_compute_metrics(self.result.compute or {}),
            **stability,
            **stalled,
        }
        return {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }

    def _read_items(self, name: str) -> dict[str, Any]:
        path = self.dir / name
        if self.status != RunStatus.COMPLETED or not path.exists():
            return {}
        try:
            items = read_json(path)
        except (OSError, ValueError) as exc:  # damaged: the run falls back to seed-level stats
            log.warning("unreadable %s (%s): its per-item scores are left out", path, exc)
            return {}
        return items if isinstance(items, dict) else {}

    @cached_property
    def _harness(self) -> dict[str, Any]:
        """A completed run's harness_items.json (lm-evaluation-harness tasks), or {}."""
        return self._read_items(HARNESS_ITEMS)

    @cached_property
    def eval_items(self) -> dict[str, Any]:
        """A completed run's eval_items.json (per-item scores, reference levels), with the
        harness tasks' per-item scores and reference levels merged in; {} without both."""
        items = self._read_items(EVAL_ITEMS)
        harness = self._harness
        if not harness:
            return items
        merged = {**items, "tasks": {**(items.get("tasks") or {}), **(harness.get("tasks") or {})}}
        levels = {k: dict(v) for k, v in (items.get("reference_metrics") or {}).items()}
        for key, values in (harness.get("reference_metrics") or {}).items():
            levels.setdefault(key, {}).update(values)
        merged["reference_metrics"] = levels
        return merged

    def curve(self, key: str) -> dict[int, float]:
        """``{step: value}`` of ``key`` (``loss`` or ``val_loss``) from metrics.jsonl."""
        return {r["step"]: r[key] for r in read_jsonl(self.dir / METRICS_FILE) if key in r}

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved run config, flattened to dotted keys (empty if absent)."""
        path = self.dir / CONFIG
        try:
            return (
                flatten(OmegaConf.to_container(OmegaConf.load(path)), encode=True)
                if path.exists()
                else {}
            )
        except Exception as exc:  # a damaged config.yaml never stops the report
            log.warning("unreadable %s: %s", path, exc)
            return {}


@dataclass
class Variant:
    """The runs of one variant (one per seed, plus reruns that failed)."""

    label: str
    runs: list[Run] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        return [r.metrics[metric] for r in self.runs if metric in r.metrics]

    def with_status(self, status: str) -> list[Run]:
        return [r for r in self.runs if r.status == status]


@dataclass
class Sweep:
    """A sweep directory's variants, its baseline variant and its verdict metrics.
    ``cache`` holds what is computed from the runs once (the statistics per metric)."""

    dir: Path
    variants: list[Variant]
    baseline: Variant | None
    primary: list[str]
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    claims: list[Any] = field(default_factory=list)  # report.claims (glmlab/config/claims.py)

    @property
    def name(self) -> str:
        """The experiment's name (the runs' ``name``, which named ``sweeps/<name>``), else
        the directory's: a report rebuilt from a copied or renamed folder keeps its title."""
        names = {r.config.get("name") for r in self.runs if r.config}
        if len(names) == 1 and isinstance(named := names.pop(), str) and named:
            return named
        return self.dir.resolve().name

    @property
    def runs(self) -> list[Run]:
        return [r for v in self.variants for r in v.runs]

    def metrics(self) -> list[str]:
        """Metrics some completed run reports, in :data:`METRICS` order then by name;
        perplexities are left out (a loss table shows exp of its mean)."""
        present = {m for r in self.runs for m in r.metrics if not m.endswith("_ppl")}
        return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def _compute_metrics(compute: dict[str, Any]) -> dict[str, float]:
    """What a run's ``compute`` (glmlab/ladder/compute.py) says of its cost and supervision:
    its training FLOPs and the tokens with a loss per step (the scored share of the tokens
    a step runs on)."""
    out = {}
    if isinstance(compute.get("flops"), int | float):
        out["train_flops"] = float(compute["flops"])
    share, per_step = compute.get("scored_fraction"), compute.get("tokens_per_step")
    if isinstance(share, int | float) and isinstance(per_step, int | float):
        out["loss_tokens_per_step"] = round(share * per_step, 1)
    return out


def variant_label(variant: list[str]) -> str:
    """How a report names a variant: its differing overrides."""
    return ", ".join(variant) if variant else "(defaults)"


def find_variant(sweep: Sweep, spelled: str | None) -> Variant | None:
    """The variant whose label is ``spelled`` (overrides as report.baseline spells them,
    comma-separated); the baseline for None."""
    if spelled is None:
        return sweep.baseline
    wanted = variant_label(variant_overrides([w.strip() for w in str(spelled).split(",")]))
    want = set(wanted.split(", "))
    return next((v for v in sweep.variants if set(v.label.split(", ")) == want), None)


def differing_overrides(
    results: Sequence[RunResult], roles: Sequence[str | None] | None = None
) -> list[list[str]]:
    """Per run, the variant overrides whose key does not hold one value in every run:
    the settings that tell the sweep's variants apart, found automatically. ``roles``: a
    ladder run's role (glmlab/ladder/roles.py), joined as ``ladder.role=<role>`` so that
    tuning, verdict and superseded runs never share a variant."""
    roles = roles or [None] * len(results)
    parsed = [
        dict(
            o.split("=", 1) for o in [*(r.variant or []), *([f"{ROLE_KEY}={role}"] if role else [])]
        )
        for r, role in zip(results, roles, strict=True)
    ]
    keys = set().union(*parsed) if parsed else set()
    differing = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    return [sorted(f"{k}={v}" for k, v in p.items() if k in differing) for p in parsed]


def read_run(run_dir: Path) -> Run:
    """One run directory as the report reads it. A run cut off before its result.json
    (killed, out of time) reads as ``unfinished``, and one with a damaged result.json as
    ``failed`` naming the file; both get their overrides from Hydra's record."""
    result = read_result(run_dir)
    if result is not None and result.unreadable is None:
        return Run(run_dir, result)
    if result is None:
        result = RunResult(
            status=UNFINISHED,
            step=last_step(run_dir),
            error=INTERRUPTED,
            run_dir=str(run_dir),
        )
    overrides = read_overrides(run_dir)
    result.overrides = overrides
    result.variant = variant_overrides(overrides)
    result.seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), None)
    return Run(run_dir, result)


def _seed_order(seed: Any) -> tuple[int, int, str]:
    # Numeric seeds in numeric order (an unfinished run's seed is read back as a string).
    text = str(seed)
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)


def _is_baseline(label: str, baseline: str | Sequence[str] | None) -> bool:
    if baseline is None:
        return False
    wanted = [baseline] if isinstance(baseline, str) else list(baseline)
    # Spelled as on the command line or as in a run directory's name (True -> true).
    parts = [w.strip() for item in wanted for w in str(item).split(",") if w.strip()]
    return set(label.split(", ")) == set(variant_overrides(parts))


def report_settings(sweep_dir: Path) -> dict[str, Any]:
    """The sweep's ``report`` settings (baseline, metric, claims) from Hydra's multirun.yaml."""
    path = sweep_dir / MULTIRUN
    if not path.exists():
        return {}
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    return dict((loaded.get("report") if isinstance(loaded, dict) else None) or {})


def load_sweep(
    sweep_dir: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
) -> Sweep:
    """The runs under ``sweep_dir`` grouped by variant. ``baseline`` (the baseline variant's
    overrides) and ``metric`` (the verdict metric(s)) default to the sweep's
    ``report.baseline`` and ``report.metric`` from multirun.yaml; the claims are its
    ``report.claims``."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"{sweep_dir}: no such sweep directory"
            + (" (it is a file)" if sweep_dir.exists() else "")
            + "; give the folder a multirun wrote (sweeps/<name>, or its hydra.sweep.dir)"
        )
    settings = report_settings(sweep_dir)
    baseline = settings.get("baseline") if baseline is None else baseline
    metric = metric or settings.get("metric") or DEFAULT_METRIC
    runs = [read_run(d) for d in iter_run_dirs(sweep_dir)]
    if not runs:
        raise FileNotFoundError(
            f"no runs under {sweep_dir}: expected <run>/{RESULT} files from a glmlab multirun"
        )
    # A ladder's tuning, verdict and superseded runs are told apart, never pooled.
    roles = ladder_roles(sweep_dir, [r.result.overrides for r in runs])
    groups: dict[str, Variant] = {}
    labels = differing_overrides([r.result for r in runs], roles)
    for run, variant in zip(runs, labels, strict=True):
        label = variant_label(variant)
        groups.setdefault(label, Variant(label)).runs.append(run)
    base = next((v for v in groups.values() if _is_baseline(v.label, baseline)), None)
    # The baseline first, then by label; runs by seed.
    variants = sorted(groups.values(), key=lambda v: (v is not base, v.label))
    for v in variants:
        v.runs.sort(key=lambda r: (*_seed_order(r.seed), str(r.dir)))
    primary = [metric] if isinstance(metric, str) else list(metric)
    return Sweep(sweep_dir, variants, base, primary, claims=list(settings.get("claims") or []))


def differing_config(runs_by_group: dict[str, list[Run]]) -> dict[str, dict[str, str]]:
    """``{config key: {group: value}}`` for the keys (seed aside) whose value is not the
    same in every run: what really differs, e.g. every key an ``objective=`` choice sets.
    A group whose runs disagree on a key shows ``varies``."""
    all_runs = [r for runs in runs_by_group.values() for r in runs if r.config]
    keys = sorted(set().union(*(r.config for r in all_runs))) if all_runs else []
    out: dict[str, dict[str, str]] = {}
    for key in keys:
        if key == "seed" or len({json.dumps(r.config.get(key)) for r in all_runs}) < 2:
            continue
        row = {}
        for group, runs in runs_by_group.items():
            configs = [r.config for r in runs if r.config]
            seen = {json.dumps(c.get(key)) for c in configs}
            row[group] = (
                "–"
                if not seen
                else "varies"
                if len(seen) > 1
                else show_value(configs[0].get(key, "–"))
            )
        out[key] = row
    return out


def show_value(value: Any) -> str:
    """A config value as the command line spells it (``true``, ``false``, ``null``)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)
