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
from glmlab.io import read_jsonl, write_text_atomic
from glmlab.report_html import markdown_to_html
from glmlab.run import variant_overrides
from glmlab.rundir import RESULT, RunStatus, read_result

log = logging.getLogger("glmlab")

ALPHA = 0.05  # significance level of every test in a report
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


# -- statistics -------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    # Continued fraction of the incomplete beta function (modified Lentz's method).
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail probability P(|T| >= |t|) of Student's t with ``df`` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t, by bisection on :func:`t_sf2`."""
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > 2.0 * (1.0 - q):
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_sf2(mid, df) > 2.0 * (1.0 - q) else (lo, mid)
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class Stats:
    """Mean, sample standard deviation and the t-based 95% CI of the mean (n >= 2)."""

    n: int
    mean: float
    std: float | None
    ci: tuple[float, float] | None


def describe(values: Sequence[float]) -> Stats | None:
    """:class:`Stats` of ``values``; None when there are none."""
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Stats(1, mean, None, None)
    std = statistics.stdev(values)
    half = t_quantile(1.0 - ALPHA / 2.0, len(values) - 1) * std / math.sqrt(len(values))
    return Stats(len(values), mean, std, (mean - half, mean + half))


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of mean(a) - mean(b): difference, its standard
    error, t, Welch-Satterthwaite degrees of freedom, two-sided p."""

    diff: float
    se: float
    t: float
    df: float
    p: float

    @property
    def significant(self) -> bool:
        return self.p < ALPHA


def welch_test(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """None when either sample has fewer than 2 values or both have zero variance."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0.0:
        return None
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return Welch(diff, se, diff / se, df, t_sf2(diff / se, df))


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

    def curve(self, key: str) -> dict[int, float]:
        """``{step: value}`` of ``key`` (``loss`` or ``val_loss``) from metrics.jsonl."""
        return {r["step"]: r[key] for r in read_jsonl(self.dir / rundir.METRICS) if key in r}

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved run config, flattened to dotted keys (empty if absent)."""
        path = self.dir / "config.yaml"
        try:
            return _flatten(OmegaConf.to_container(OmegaConf.load(path))) if path.exists() else {}
        except Exception as exc:  # a damaged config.yaml never stops the report
            log.warning("unreadable %s: %s", path, exc)
            return {}


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list | dict) else node}


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
    return set(label.split(", ")) == {w.strip() for item in wanted for w in item.split(", ")}


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
                "–" if not seen else "varies" if len(seen) > 1 else str(configs[0].get(key, "–"))
            )
        out[key] = row
    return out


# -- rendering --------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, or a dash when missing."""
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def fmt_delta(w: Welch, digits: int) -> str:
    """``+d ± se``, bold when significant."""
    text = f"{w.diff:+.{digits}f} ± {w.se:.{digits}f}"
    return f"**{text}**" if w.significant else text


def md_cell(text: str) -> str:
    """``text`` made safe for a markdown table cell."""
    return text.replace("|", "\\|")


def _direction(metric: Metric, diff: float) -> str:
    if metric.higher_is_better is None or diff == 0:
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == metric.higher_is_better else "worse"


def _steps(runs: Iterable[Run]) -> str:
    return ", ".join(str(r.result.get("step")) for r in runs)


def verdict(sweep: Sweep, variant: Variant, metric_name: str) -> str:
    """One plain sentence: the variant's difference to the baseline on one metric."""
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
    base_values = sweep.baseline.values(metric_name) if sweep.baseline else []
    if not base_values:
        return f"{m.label} {fmt(statistics.fmean(values), m.digits)} (no baseline value to compare){note}"
    test = welch_test(values, base_values)
    if test is None:
        diff = statistics.fmean(values) - statistics.fmean(base_values)
        return f"{m.label} {diff:+.{m.digits}f} vs baseline (too few runs or no variance for a test){note}"
    sig = "significant" if test.significant else "not significant"
    return (
        f"{m.label} {test.diff:+.{m.digits}f} ± {test.se:.{m.digits}f} vs baseline "
        f"(Welch's t = {test.t:.2f}, df = {test.df:.1f}, p = {test.p:.3g}): {sig} at 5%"
        f"{', ' + _direction(m, test.diff) if test.significant else ''}{note}"
    )


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
    lines = [f"### {m.label}" + (f" ({direction})" if direction else ""), ""]
    if m.note:
        lines += [f"`{name}`: {m.note}.", ""]
    header = "| variant | mean ± std | 95% CI | n | Δ vs baseline ± SE | p (Welch) |"
    sep = "|---|---|---|---|---|---|"
    if is_loss:
        header, sep = header + " ppl at mean |", sep + "---|"
    lines += [header, sep]
    base = sweep.baseline.values(name) if sweep.baseline else []
    for v in sweep.variants:
        s = describe(v.values(name))
        label = md_cell(v.label) + (" **(baseline)**" if v is sweep.baseline else "")
        if s is None:
            row = [label, "–", "–", "0", "–", "–"]
        else:
            ci = f"[{fmt(s.ci[0], m.digits)}, {fmt(s.ci[1], m.digits)}]" if s.ci else "–"
            test = None if v is sweep.baseline else welch_test(v.values(name), base)
            row = [
                label,
                f"{fmt(s.mean, m.digits)} ± {fmt(s.std, m.digits)}",
                ci,
                str(s.n),
                fmt_delta(test, m.digits) if test else "–",
                f"{test.p:.3g}" if test else "–",
            ]
        if is_loss:
            row.append(fmt(math.exp(min(s.mean, 700.0)), 2) if s else "–")
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


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
        "Statistics over seeds: mean ± sample standard deviation; 95% CI = mean ± "
        "t(0.975, n − 1) · std / √n; Δ = variant mean − baseline mean ± its standard error, "
        "tested with Welch's two-sided t-test (unequal variances, Welch–Satterthwaite df; no "
        "correction for multiple comparisons); **bold** = significant at 5%. Diverged and "
        "failed runs are left out of the statistics and listed at the end.",
        "",
        "## Verdicts",
        "",
    ]
    for v in sweep.variants:
        if v is sweep.baseline:
            continue
        # A variant with no completed run gets one line, not one per metric.
        for line in dict.fromkeys(verdict(sweep, v, metric) for metric in sweep.primary):
            lines.append(f"- {v.label}: {line}.")
    if sweep.baseline is None or len(sweep.variants) < 2:
        lines.append("- No baseline to compare against.")
    lines += [
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
            "matplotlib is not installed, so there are no plots: `pip install 'glmlab[report]'`."
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


def build_report(
    sweep_dir: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    amend: Callable[[Sweep], None] | None = None,
) -> Path:
    """Write report.md, report.html and the loss curves for ``sweep_dir``; return the .md.
    ``amend`` may fill in the sweep's unfinished runs first (``glmlab collect`` does)."""
    sweep = load_sweep(sweep_dir, baseline=baseline, metric=metric)
    if amend is not None:
        amend(sweep)
    curves = plot_curves(sweep, sweep.dir / CURVES)
    md = render_markdown(sweep, curves=curves)
    path = write_text_atomic(sweep.dir / "report.md", md)
    html = markdown_to_html(md, base_dir=sweep.dir, title=f"Sweep report: {sweep.name}")
    write_text_atomic(sweep.dir / "report.html", html)
    from glmlab.results import csv_text  # the same runs as a table, one row per run

    write_text_atomic(sweep.dir / RESULTS_CSV, csv_text(sweep))
    return path


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
            path = build_report(
                config.hydra.sweep.dir, baseline=report.get("baseline"), metric=report.get("metric")
            )
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
        print(f"glmlab: sweep report written to {path} (and report.html)")
