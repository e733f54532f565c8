"""Sweep reports: per metric, each variant over its seeds against the baseline variant.

A Hydra callback writes ``report.md``, ``report.html`` (self-contained: the loss curves
are embedded) and ``loss_curves.png`` into the sweep directory when a multirun ends;
``glmlab report SWEEP_DIR`` rebuilds them. Failed, diverged and unfinished runs are listed
with their reason and step, and never stop the report. docs/REPORTS.md describes the
statistics.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from glmlab import provenance, rundir
from glmlab.io import read_json, read_jsonl, write_text_atomic
from glmlab.report_html import markdown_to_html
from glmlab.report_stats import (
    NONE,
    PAIRED,
    REFERENCES,
    TASK_OF_METRIC,
    WELCH,
    MetricTests,
    assess_metric,
    reference_levels,
)
from glmlab.run import variant_overrides
from glmlab.rundir import RESULT, RunStatus, read_result
from glmlab.stats import ALPHA, N_BOOT, PairedDiff, Stats, Welch, describe, welch_test

__all__ = ["ALPHA", "Stats", "Welch", "build_report", "describe", "load_sweep", "welch_test"]

log = logging.getLogger("glmlab")

CURVES = "loss_curves.png"
RESULTS_CSV = "results.csv"


# -- metrics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """How a report shows one metric: a label, which direction is better, and digits."""

    label: str
    higher_is_better: bool | None
    digits: int = 4
    note: str = ""


# The names glmlab.evaluation writes (plus the trainer's final_val_loss), in report order.
METRICS: dict[str, Metric] = {
    "final_val_loss": Metric(
        "validation loss",
        False,
        note="the run's own training objective on the held-out split: comparable only "
        "between variants trained with the same objective",
    ),
    "infill_token_loss": Metric(
        "token infilling loss", False, note="NLU proxy: nats per span token (15% token spans)"
    ),
    "infill_sentence_loss": Metric(
        "sentence infilling loss", False, note="nats per token of masked whole sentences"
    ),
    "doc_gen_loss": Metric(
        "document generation loss", False, note="NLG proxy: nats per token of the last 50%"
    ),
    "cloze_acc": Metric(
        "cloze accuracy", True, note="multiple choice by summed span log-probability"
    ),
    "train_tokens_per_s": Metric(
        "training tokens/s", True, digits=0, note="median over logging windows"
    ),
    "peak_mem_mb": Metric("peak memory (MiB)", False, digits=1),
}


def metric_info(name: str) -> Metric:
    """How to show metric ``name``; unknown names get a neutral entry."""
    return METRICS.get(name, Metric(name, None))


# -- runs, variants, sweeps -------------------------------------------------------------


@dataclass
class Run:
    """One run directory: its result (synthesised as ``unfinished`` when a run was cut off
    before writing one) and, on demand, its metrics log and resolved config."""

    dir: Path
    result: dict[str, Any]

    @property
    def status(self) -> str:
        return self.result.get("status", "unfinished")

    @property
    def seed(self) -> Any:
        return self.result.get("seed")

    @cached_property
    def metrics(self) -> dict[str, float]:
        """Final metric values of a completed run: ``final_val_loss`` and the suite's."""
        if self.status != RunStatus.COMPLETED:
            return {}
        values = {
            "final_val_loss": self.result.get("final_val_loss"),
            **(self.result.get("eval") or {}),
        }
        return {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }

    @cached_property
    def eval_items(self) -> dict[str, Any]:
        """A completed run's eval_items.json (per-item scores, reference levels), or {}."""
        path = self.dir / rundir.EVAL_ITEMS
        if self.status != RunStatus.COMPLETED or not path.exists():
            return {}
        try:
            items = read_json(path)
        except (OSError, ValueError) as exc:  # damaged: the run falls back to seed-level stats
            log.warning("unreadable %s (%s): its per-item scores are left out", path, exc)
            return {}
        return items if isinstance(items, dict) else {}

    def curve(self, key: str) -> dict[int, float]:
        """``{step: value}`` of ``key`` (``loss`` or ``val_loss``) from metrics.jsonl."""
        return {r["step"]: r[key] for r in read_jsonl(self.dir / rundir.METRICS) if key in r}

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved run config, flattened to dotted keys (empty if absent)."""
        path = self.dir / "config.yaml"
        try:
            return (
                rundir.flatten(OmegaConf.to_container(OmegaConf.load(path)), encode=True)
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
    """A sweep directory's variants, its baseline variant and its verdict metrics."""

    dir: Path
    variants: list[Variant]
    baseline: Variant | None
    primary: list[str]

    @property
    def name(self) -> str:
        return self.dir.resolve().name

    @property
    def runs(self) -> list[Run]:
        return [r for v in self.variants for r in v.runs]

    def metrics(self) -> list[str]:
        """Metrics some completed run reports, in :data:`METRICS` order then by name;
        perplexities are left out (a loss table shows exp of its mean)."""
        present = {m for r in self.runs for m in r.metrics if not m.endswith("_ppl")}
        return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def variant_label(variant: list[str]) -> str:
    """How a report names a variant: its differing overrides."""
    return ", ".join(variant) if variant else "(defaults)"


def differing_overrides(results: list[dict[str, Any]]) -> list[list[str]]:
    """Per run, the variant overrides whose key does not hold one value in every run:
    the settings that tell the sweep's variants apart, found automatically."""
    parsed = [dict(o.split("=", 1) for o in r.get("variant", [])) for r in results]
    keys = set().union(*parsed) if parsed else set()
    differing = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    return [sorted(f"{k}={v}" for k, v in p.items() if k in differing) for p in parsed]


def _read_run(run_dir: Path) -> Run:
    result = read_result(run_dir)  # an unreadable result.json reads as a failed run naming it
    if result is not None and "unreadable" not in result.extra:
        return Run(run_dir, result.to_dict())
    # Cut off before result.json (killed, out of time), or a damaged one: Hydra saved the
    # run's overrides.
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    try:
        overrides = [str(o) for o in OmegaConf.load(overrides_file)]
    except Exception:  # absent or damaged: the run is listed without its variant
        overrides = []
    seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), None)
    values: dict[str, Any] = {
        "status": "unfinished",
        "step": rundir.last_step(run_dir),
        "error": "no result.json: the run was interrupted; rerun the sweep to resume it",
        "run_dir": str(run_dir),
    }
    if result is not None:
        values = result.to_dict()
    values.update(overrides=overrides, variant=variant_overrides(overrides), seed=seed)
    return Run(run_dir, values)


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


def load_sweep(
    sweep_dir: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
) -> Sweep:
    """The runs under ``sweep_dir`` grouped by variant. ``baseline`` (the baseline variant's
    overrides) and ``metric`` (the verdict metric(s)) default to the sweep's
    ``report.baseline`` and ``report.metric`` from multirun.yaml."""
    sweep_dir = Path(sweep_dir)
    report_cfg: dict[str, Any] = {}
    if (sweep_dir / "multirun.yaml").exists():
        loaded = OmegaConf.to_container(OmegaConf.load(sweep_dir / "multirun.yaml"))
        report_cfg = dict(loaded.get("report") or {})
    baseline = report_cfg.get("baseline") if baseline is None else baseline
    metric = metric or report_cfg.get("metric") or "final_val_loss"
    run_dirs = sorted(
        p for p in sweep_dir.iterdir() if (p / RESULT).exists() or (p / "config.yaml").exists()
    )
    runs = [_read_run(d) for d in run_dirs]
    if not runs:
        raise FileNotFoundError(
            f"no runs under {sweep_dir}: expected <run>/{RESULT} files from a glmlab multirun"
        )
    groups: dict[str, Variant] = {}
    for run, variant in zip(runs, differing_overrides([r.result for r in runs]), strict=True):
        label = variant_label(variant)
        groups.setdefault(label, Variant(label)).runs.append(run)
    base = next((v for v in groups.values() if _is_baseline(v.label, baseline)), None)
    # The baseline first, then by label; runs by seed.
    variants = sorted(groups.values(), key=lambda v: (v is not base, v.label))
    for v in variants:
        v.runs.sort(key=lambda r: (*_seed_order(r.seed), str(r.dir)))
    primary = [metric] if isinstance(metric, str) else list(metric)
    return Sweep(sweep_dir, variants, base, primary)


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


# -- rendering --------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, or a dash when missing."""
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def fmt_delta(d: PairedDiff | Welch, digits: int) -> str:
    """A difference to the baseline: ``+d [low, high]`` (paired bootstrap) or ``+d ± se``
    (Welch), bold when significant (after Holm's adjustment where there is one)."""
    if isinstance(d, PairedDiff):
        text = f"{d.diff:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
    else:
        text = f"{d.diff:+.{digits}f} ± {d.se:.{digits}f}"
    return f"**{text}**" if d.significant else text


def fmt_p(d: PairedDiff | Welch) -> str:
    """The p-value a verdict rests on: Holm-adjusted where several variants were tested."""
    return f"{d.p:.3g}" if d.p_adjusted is None else f"{d.p_adjusted:.3g} (raw {d.p:.3g})"


def md_cell(text: str) -> str:
    """``text`` made safe for a markdown table cell."""
    return text.replace("|", "\\|")


def _direction(metric: Metric, diff: float) -> str:
    if metric.higher_is_better is None or diff == 0:
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == metric.higher_is_better else "worse"


def _steps(runs: Iterable[Run]) -> str:
    return ", ".join(str(r.result.get("step")) for r in runs)


def untestable_reason(sweep: Sweep, metric: str) -> str:
    """Why ``metric`` must not be tested between this sweep's variants, or ''."""
    if metric != "final_val_loss":
        return ""
    keys = differing_config({v.label: v.runs for v in sweep.variants})
    objective_keys = sorted(k for k in keys if k.startswith("objective."))
    if objective_keys:
        shown = ", ".join(objective_keys[:3]) + (", ..." if len(objective_keys) > 3 else "")
        return f"not tested: the variants train different objectives ({shown})"
    return ""


def tests_of(sweep: Sweep, metric: str) -> MetricTests:
    """:func:`glmlab.report_stats.assess_metric` for one metric of the sweep (memoised)."""
    cache = sweep.__dict__.setdefault("_tests", {})
    if metric not in cache:
        cache[metric] = assess_metric(
            sweep.variants, sweep.baseline, metric, untestable=untestable_reason(sweep, metric)
        )
    return cache[metric]


def verdict(sweep: Sweep, variant: Variant, metric_name: str) -> str:
    """A short phrase: the variant's difference to the baseline on one metric."""
    m = metric_info(metric_name)
    diverged = variant.with_status(RunStatus.DIVERGED)
    n_runs = len(variant.runs)
    values = variant.values(metric_name)
    if not values:
        if variant.with_status(RunStatus.COMPLETED):
            return f"no completed run reports {m.label}"
        if diverged:
            return f"diverged in {len(diverged)} of {n_runs} runs (at steps {_steps(diverged)}): nothing to compare"
        return "no completed run: nothing to compare"
    note = (
        f"; {len(diverged)} of {n_runs} runs diverged (at steps {_steps(diverged)}) and are excluded"
        if diverged
        else ""
    )
    tests = tests_of(sweep, metric_name)
    base_values = sweep.baseline.values(metric_name) if sweep.baseline else []
    if not base_values:
        return f"{fmt(statistics.fmean(values), m.digits)} (no baseline value to compare){note}"
    d = tests.diffs.get(variant.label)
    if d is None:
        diff = statistics.fmean(values) - statistics.fmean(base_values)
        why = tests.reason if tests.method == NONE else "too few runs or no variance for a test"
        return f"{diff:+.{m.digits}f} ({why}){note}"
    sig = f"significant, {_direction(m, d.diff)}" if d.significant else "not significant"
    return f"{fmt_delta(d, m.digits)}, p = {fmt_p(d)}: {sig}{note}"


def render_problem_runs(sweep: Sweep) -> list[str]:
    """Markdown lines for the failed, diverged and unfinished runs: status, variant, seed,
    step, reason and run directory. The only place a report describes a failed run."""
    lines = []
    for v in sweep.variants:
        for r in v.runs:
            if r.status == RunStatus.COMPLETED:
                continue
            res = r.result
            lines.append(
                f"- {r.status}: {v.label}, seed {r.seed} at step {res.get('step')}: "
                f"{res.get('error') or 'stopped before max_steps; rerun to resume'} (`{r.dir}`)"
            )
            if logs := res.get("job_logs"):  # the Slurm/submitit job's own output files
                lines.append(f"  - job logs: stdout `{logs['stdout']}`, stderr `{logs['stderr']}`")
    return lines or ["None: every run completed."]


def render_attention(sweep: Sweep) -> list[str]:
    """Per variant, the attention backend its runs used and how it was chosen, with the
    forward + backward times ``auto`` measured (``attention_selection`` in result.json)."""
    lines = []
    for v in sweep.variants:
        chosen: dict[str, int] = {}
        for r in v.runs:
            s = r.result.get("attention_selection")
            if not s:
                continue
            timed = ", ".join(
                f"{name} {ms:.3g} ms"
                for name, ms in sorted((s.get("timings_ms") or {}).items(), key=lambda x: x[1])
            )
            text = f"{s['backend']} ({s['method']}{': ' + timed if timed else ''})"
            chosen[text] = chosen.get(text, 0) + 1
        lines += [f"- {v.label}: {text}, {n} of {len(v.runs)} runs" for text, n in chosen.items()]
    return lines


def _metric_table(sweep: Sweep, name: str) -> list[str]:
    m = metric_info(name)
    direction = {True: "higher is better", False: "lower is better", None: ""}[m.higher_is_better]
    is_loss = name.endswith("_loss")
    tests = tests_of(sweep, name)
    lines = [f"### {m.label}" + (f" ({direction})" if direction else ""), ""]
    how = {
        PAIRED: "95% CI and Δ from the paired bootstrap over seeds and items",
        WELCH: f"95% CI over seeds (t); Δ ± SE with Welch's t-test ({tests.reason})",
        NONE: tests.reason
        + (
            ": each variant is scored on its own task; compare the evaluation suite's metrics"
            if name == "final_val_loss"
            else ""
        ),
    }[tests.method]
    lines += [f"`{name}`: {m.note + '. ' if m.note else ''}{how}.", ""]
    header = "| variant | mean ± std over seeds | 95% CI | n | Δ vs baseline | p |"
    sep = "|---|---|---|---|---|---|"
    if is_loss:
        header, sep = header + " ppl at mean |", sep + "---|"
    lines += [header, sep]
    for v in sweep.variants:
        s = describe(v.values(name))
        label = md_cell(v.label) + (" **(baseline)**" if v is sweep.baseline else "")
        if s is None:
            row = [label, "–", "–", "0", "–", "–"]
        else:
            iv = tests.intervals.get(v.label)
            ci = (
                f"[{fmt(iv.low, m.digits)}, {fmt(iv.high, m.digits)}]"
                if iv and iv.low is not None
                else "–"
            )
            d = tests.diffs.get(v.label)
            row = [
                label,
                f"{fmt(s.mean, m.digits)} ± {fmt(s.std, m.digits)}",
                ci,
                str(s.n),
                fmt_delta(d, m.digits) if d else "–",
                fmt_p(d) if d else "–",
            ]
        if is_loss:
            row.append(fmt(math.exp(min(s.mean, 700.0)), 2) if s else "–")
        lines.append("| " + " | ".join(row) + " |")
    for key, level in reference_levels(sweep.runs, name).items():
        row = [f"*reference: {REFERENCES[key]}*", fmt(level, m.digits), "–", "–", "–", "–"]
        if is_loss:
            row.append(fmt(math.exp(min(level, 700.0)), 2))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


METHOD = (
    "**Method.** Every run scores the same evaluation items, so each variant is compared "
    "with the baseline *paired by item*: the difference Δ (variant mean − baseline mean) "
    "gets a 95% interval from a hierarchical bootstrap ({n_boot} replicates, fixed seed) "
    "that resamples each variant's seeds and then the items, one item resample shared by "
    "both sides; the seed part is rescaled to the seed variance alone (run-to-run spread "
    "less its item noise) and the p-value is twice the share of replicates on the far side "
    "of zero. With several variants, p-values are Holm-adjusted per metric; **bold** = "
    "significant at 5% after adjustment. Metrics without per-item scores (the validation "
    "loss, older run directories) fall back to Welch's t-test over seeds; throughput and "
    "memory are shown, not tested; the validation loss is not tested between different "
    "objectives. Reference rows: chance (cloze), a unigram model of the training split's "
    "tokens and the untrained model, scored on the same items. Diverged and failed runs are "
    "left out and listed at the end."
)


def shared_settings(sweep: Sweep) -> str:
    """One line with the settings every run shares: steps, batch, model, corpus, versions."""
    runs = [r for r in sweep.runs if r.config]
    if not runs:
        return ""

    def same(key: str, source: str = "config") -> Any:
        values = {
            json.dumps(r.config.get(key) if source == "config" else _dig(r.result, key))
            for r in runs
        }
        return json.loads(values.pop()) if len(values) == 1 else None

    parts = []
    steps, batch, seq = same("train.max_steps"), same("train.batch_size"), same("data.seq_len")
    if steps is not None:
        parts.append(f"{steps} steps" + (f" × {batch} × {seq} tokens" if batch and seq else ""))
    layers, dim, params = same("model.n_layers"), same("model.dim"), same("n_params", "result")
    if layers and dim:
        parts.append(
            f"model {layers} × {dim}" + (f" ({params / 1e6:.2f}M parameters)" if params else "")
        )
    corpus, python = same("data.corpus"), same("provenance.python", "result")
    if corpus:
        parts.append(f"corpus {corpus}" + (f" (Python {python})" if python else ""))
    for pkg in ("glmlab", "torch"):
        if version := same(f"provenance.{pkg}.version", "result"):
            parts.append(f"{pkg} {version}")
    return "Shared settings: " + ", ".join(parts) + "." if parts else ""


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def reference_summary(sweep: Sweep) -> list[str]:
    """Verdict lines on whether the variants trained past the trivial references."""
    lines = []
    for metric, reference in (("infill_token_loss", "unigram"), ("cloze_acc", "chance")):
        level = reference_levels(sweep.runs, metric).get(reference)
        if level is None:
            continue
        m = metric_info(metric)
        tests = tests_of(sweep, metric)
        behind = []
        for v in sweep.variants:
            iv = tests.intervals.get(v.label)
            if iv is None:
                continue
            # Past the reference when the whole 95% interval is on the better side.
            edge = iv.high if m.higher_is_better is False else iv.low
            if edge is None:
                edge = iv.estimate
            past = edge < level if m.higher_is_better is False else edge > level
            if not past:
                behind.append(v.label)
        means = [iv.estimate for iv in tests.intervals.values() if iv is not None]
        span = f"{fmt(min(means), m.digits)}–{fmt(max(means), m.digits)}" if means else "–"
        if behind:
            lines.append(
                f"- ⚠ {m.label}: {', '.join(f'`{b}`' for b in behind)} not clearly past "
                f"the {REFERENCES[reference]} level {fmt(level, m.digits)} (variants {span}): "
                "the differences between variants mean little; train longer or larger."
            )
        else:
            lines.append(
                f"- {m.label}: every variant is past the {REFERENCES[reference]} level "
                f"{fmt(level, m.digits)} (variants {span}; 95% intervals clear of it)."
            )
    return lines


def fallback_note(sweep: Sweep) -> list[str]:
    """A line naming the suite metrics tested over seeds only (no per-item scores)."""
    fallen = [
        metric_info(m).label
        for m in sweep.metrics()
        if m in TASK_OF_METRIC and tests_of(sweep, m).method == WELCH
    ]
    if not fallen:
        return []
    return [
        f"- Over seeds only (Welch's t-test): {', '.join(fallen)}: these run directories "
        "hold no per-item scores (eval_items.json), so items cannot be paired; rerun "
        "the sweep in a fresh directory to get them."
    ]


def render_verdicts(sweep: Sweep) -> list[str]:
    """The verdicts: one table row per variant, one column per verdict metric."""
    others = [v for v in sweep.variants if v is not sweep.baseline]
    if sweep.baseline is None or not others:
        return ["- No baseline to compare against."]
    header = ["variant", *(metric_info(m).label for m in sweep.primary)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for v in others:
        cells = [verdict(sweep, v, m) for m in sweep.primary]
        lines.append("| " + " | ".join([md_cell(v.label), *map(md_cell, cells)]) + " |")
    return lines


def render_markdown(sweep: Sweep, *, curves: bool) -> str:
    """The report as markdown; ``curves`` says whether :data:`CURVES` was written."""
    counts = {
        s: sum(r.status == s for r in sweep.runs) for s in (RunStatus.COMPLETED, RunStatus.DIVERGED)
    }
    others = len(sweep.runs) - sum(counts.values())
    base = f"`{sweep.baseline.label}`" if sweep.baseline else "none named (set report.baseline)"
    lines = [
        f"# Sweep report: {sweep.name}",
        "",
        f"{len(sweep.runs)} runs in `{sweep.dir.resolve()}`: {counts['completed']} completed, "
        f"{counts['diverged']} diverged, {others} failed or unfinished. Baseline: {base}.",
        "",
    ]
    if settings := shared_settings(sweep):
        lines += [settings, ""]
    lines += [
        "## Verdicts",
        "",
        *render_verdicts(sweep),
        "",
        *reference_summary(sweep),
        *fallback_note(sweep),
        "",
        METHOD.format(n_boot=N_BOOT),
        "",
        "## Runs per variant",
        "",
        "| variant | runs ok / total | diverged | failed | unfinished | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for v in sweep.variants:
        mark = " **(baseline)**" if v is sweep.baseline else ""
        ok = len(v.with_status(RunStatus.COMPLETED))
        div = len(v.with_status(RunStatus.DIVERGED))
        failed = len(v.with_status(RunStatus.FAILED))
        seeds = ",".join(str(r.seed) for r in v.runs)
        lines.append(
            f"| {md_cell(v.label)}{mark} | {ok} / {len(v.runs)} | {div} | {failed} | "
            f"{len(v.runs) - ok - div - failed} | {seeds} |"
        )
    table = differing_config({v.label: v.runs for v in sweep.variants})
    lines += ["", "## What differs between variants", ""]
    if table:
        lines.append(
            "| config key | " + " | ".join(md_cell(v.label) for v in sweep.variants) + " |"
        )
        lines.append("|---" * (len(sweep.variants) + 1) + "|")
        for key, row in table.items():
            lines.append(
                f"| {key} | " + " | ".join(md_cell(row[v.label]) for v in sweep.variants) + " |"
            )
    else:
        lines.append("Nothing but the seed.")
    if attention := render_attention(sweep):
        lines += ["", "## Attention backend", "", *attention]
    lines += ["", "## Loss curves", ""]
    if curves:
        lines += [
            "Mean over seeds, band from the lowest to the highest seed; × marks the last "
            "logged step of a diverged run.",
            "",
            f"![loss curves]({CURVES})",
        ]
    else:
        lines.append(
            "matplotlib is not installed, so there are no plots: `pip install matplotlib`."
        )
    lines += ["", "## Metrics", ""]
    for name in sweep.metrics():
        lines += _metric_table(sweep, name)
    lines += provenance.render_markdown(
        [r.result for r in sweep.runs], [r.dir.name for r in sweep.runs]
    )
    lines += ["## Failed, diverged and unfinished runs", "", *render_problem_runs(sweep)]
    return "\n".join(lines) + "\n"


def plot_curves(sweep: Sweep, path: Path) -> bool:
    """Training and validation loss per variant with seed bands; False without matplotlib."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(fig)  # the object API: no pyplot, no global backend state
    colors = colormaps["tab10"]
    for ax, key, title in zip(
        fig.subplots(1, 2), ("loss", "val_loss"), ("training loss", "validation loss"), strict=True
    ):
        firsts: list[float] = []
        lowest = math.inf
        for i, v in enumerate(sweep.variants):
            curves = [c for c in (r.curve(key) for r in v.runs) if c]
            if not curves:
                continue
            color = colors(i % 10)  # by variant index: the same colour in both panels
            steps = sorted(set().union(*curves))
            at = [[c[s] for c in curves if s in c] for s in steps]
            ax.plot(steps, [statistics.fmean(a) for a in at], color=color, label=v.label)
            ax.fill_between(
                steps, [min(a) for a in at], [max(a) for a in at], color=color, alpha=0.2
            )
            firsts += [c[min(c)] for c in curves]
            lowest = min(lowest, *(min(c.values()) for c in curves))
            for r in v.with_status(RunStatus.DIVERGED):
                c = r.curve(key)
                if c:
                    last = max(c)
                    ax.plot([last], [c[last]], marker="x", color=color, markersize=10, mew=2.5)
        if firsts and max(firsts) > lowest:
            # A loss that explodes would flatten every other curve: clip above the start.
            ax.set_ylim(top=max(firsts) + 0.1 * (max(firsts) - lowest))
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return True


def check_choices(
    sweep: Sweep, *, baseline: str | Sequence[str] | None, metric: str | Sequence[str] | None
) -> None:
    """A ValueError naming the valid choices when ``baseline`` is no variant of the sweep
    or a ``metric`` is not one the sweep's runs report."""
    if baseline is not None and sweep.baseline is None:
        labels = "; ".join(v.label for v in sweep.variants)
        raise ValueError(
            f"--baseline {baseline!r} is not a variant of {sweep.dir}; the variants are: {labels}"
        )
    known = sweep.metrics() or list(METRICS)
    wanted = [] if metric is None else [metric] if isinstance(metric, str) else list(metric)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise ValueError(
            f"--metric {', '.join(unknown)}: not a metric of this sweep; choose from "
            f"{', '.join(known)}"
        )


def build_report(
    sweep_dir: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    amend: Callable[[Sweep], None] | None = None,
    strict: bool = False,
) -> Path:
    """Write report.md, report.html and the loss curves for ``sweep_dir``; return the .md.
    ``amend`` may fill in the sweep's unfinished runs first (``glmlab collect`` does).
    ``strict``: a baseline or metric that the sweep does not have is a ValueError that
    names the valid ones (``glmlab report``); otherwise the report says there is none."""
    sweep = load_sweep(sweep_dir, baseline=baseline, metric=metric)
    if amend is not None:
        amend(sweep)
    if strict:
        check_choices(sweep, baseline=baseline, metric=metric)
    curves = plot_curves(sweep, sweep.dir / CURVES)
    md = render_markdown(sweep, curves=curves)
    path = write_text_atomic(sweep.dir / "report.md", md)
    html = markdown_to_html(md, base_dir=sweep.dir, title=f"Sweep report: {sweep.name}")
    write_text_atomic(sweep.dir / "report.html", html)
    from glmlab.results import csv_text  # the same runs as a table, one row per run

    write_text_atomic(sweep.dir / RESULTS_CSV, csv_text(sweep))
    return path


def report_choices(report: Any) -> dict[str, Any]:
    return {"baseline": report.get("baseline"), "metric": report.get("metric")}


def sweep_summary(sweep: Sweep, report: Path) -> str:
    """The console's closing lines of a sweep: the verdicts and where the report is (the
    counts of each outcome follow on the very last line, :func:`glmlab.app.finish_sweep`)."""
    lines = [f"glmlab: sweep {sweep.name}: verdicts"]
    if sweep.baseline is not None:
        for v in sweep.variants:
            if v is not sweep.baseline:
                cells = [f"{metric_info(m).label} {verdict(sweep, v, m)}" for m in sweep.primary]
                lines.append(f"  {v.label} vs {sweep.baseline.label}: " + "; ".join(cells))
    lines += [f"  {line.lstrip('- ')}" for line in reference_summary(sweep)]
    lines.append(f"  report: {report} (and report.html)")
    return "\n".join(lines).replace("**", "")


class SweepReportCallback(Callback):
    """Hydra callback: build the sweep report when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from glmlab.cluster.launcher import submits_only

        if submits_only(config):  # the jobs were only submitted: `glmlab collect` reports
            return
        try:
            self._write_report(config)
        finally:
            from glmlab.app import finish_sweep  # the last line and the sweep's exit status

            finish_sweep(config.hydra.sweep.dir)

    def _write_report(self, config: DictConfig) -> None:
        report = config.get("report", {})
        try:
            path = build_report(config.hydra.sweep.dir, **report_choices(report))
            summary = sweep_summary(load_sweep(path.parent, **report_choices(report)), path)
        except FileNotFoundError as exc:
            log.error("no sweep report: %s", exc)
            return
        except Exception:
            # The runs are on disk whatever happens here; never fail the sweep for its report.
            log.exception(
                "building the sweep report failed; rebuild it with: glmlab report %s",
                config.hydra.sweep.dir,
            )
            return
        print(summary, flush=True)
