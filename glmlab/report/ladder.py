"""A ladder sweep read for its report: the rungs, each arm's learning-rate grid and
choice, per-rung paired differences and the fitted trends with seed-bootstrap intervals
(:class:`Ladder`); glmlab/report/ladder_markdown.py writes them, ladder_plot.py plots them.

Everything is read from the run directories and ``ladder.json`` (the plan the sweeper
saved); the statistics are the sweep report's (glmlab/report/assess.py per rung), and the
verdicts across scale come from the one verdict path (glmlab/report/verdicts.py): every
rung's difference, the pooled gap, its trend with compute, the equivalence and stability
tests of every variant and verdict metric in one family, Holm-adjusted. Diverged and
failed seed runs are counted per rung, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glmlab.io import read_json
from glmlab.ladder.fit import BootFits, FitResult, bootstrap_fits, crossover, fit_power_laws
from glmlab.ladder.lr import GridPoint, LrChoice, choose_lr
from glmlab.ladder.spec import LADDER_KEYS, LadderPlan, Rung
from glmlab.ladder.sweep import LADDER_FILE
from glmlab.report.assess import MetricTests, assess_metric, reference_check
from glmlab.report.family import Family
from glmlab.report.load import Run, Sweep, Variant, _is_baseline, report_settings
from glmlab.report.metrics import REFERENCES, margin_of, metric_info
from glmlab.report.stability import RunCount, Stability, count_runs, stability_test
from glmlab.report.verdicts import Rung as RungResult
from glmlab.report.verdicts import Verdict, judge, register, register_stability
from glmlab.runs.naming import run_address, variant_overrides

__all__ = ["LADDER_PLOT", "Ladder", "MetricTrend", "load_ladder"]

LADDER_PLOT = "ladder.png"
NOT_VARIANT = {"experiment", "ladder"}  # group choices every job of the sweep shares


@dataclass
class MetricTrend:
    """One metric across the ladder: per variant its comparison at every rung of the plan
    (``Rung`` of glmlab/report/verdicts.py; no difference where an arm has < 2 runs), the
    per-rung tests, the fit, the verdicts and the gaps at the target."""

    metric: str
    rungs: dict[str, list[RungResult]] = field(default_factory=dict)  # variant -> plan rungs
    tests: dict[str, MetricTests] = field(default_factory=dict)  # rung -> tests
    fit: FitResult | None = None
    boot: BootFits | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    gaps: dict[str, float] = field(default_factory=dict)  # fitted gap at the target compute
    cells: dict[str, dict[float, list[float]]] = field(default_factory=dict)


@dataclass
class Ladder:
    """A ladder sweep as the report reads it."""

    plan: LadderPlan
    labels: list[str]  # one per plan variant, in plan order
    baseline: str | None
    grid: dict[tuple[str, str], LrChoice]  # (variant label, rung name) -> choice
    verdict_runs: dict[tuple[str, str], list[Run]]  # (label, rung) -> phase-2 runs
    trends: dict[str, MetricTrend]
    unmatched: list[Run]
    family: Family = field(default_factory=Family)
    stability: dict[str, Stability] = field(default_factory=dict)
    margins: dict[str, float | None] = field(default_factory=dict)
    control: bool = False  # report.control was set (the ladder's sweeper adds no A/A arm yet)

    def rung(self, name: str) -> Rung:
        return next(r for r in self.plan.rungs if r.name == name)


def _key(o: str) -> str:
    return o.partition("=")[0].lstrip("+~")


def _labels(variants: Sequence[Sequence[str]]) -> list[str]:
    """Each variant's label: its overrides that differ between the variants."""
    parsed = [
        dict(o.split("=", 1) for o in variant_overrides(list(v)) if _key(o) not in NOT_VARIANT)
        for v in variants
    ]
    keys = set().union(*parsed) if parsed else set()
    differing = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    return [
        ", ".join(sorted(f"{k}={v}" for k, v in p.items() if k in differing)) or "(defaults)"
        for p in parsed
    ]


def _classify(
    run: Run, plan: LadderPlan, idents: list[frozenset[str]]
) -> tuple[int, Rung, float, int] | None:
    """(variant index, rung, lr, seed) of a run from its overrides; None if not the plan's."""
    values = {_key(o): o.partition("=")[2] for o in run.result.overrides or []}
    try:
        shape = (
            int(values["model.n_layers"]),
            int(values["model.dim"]),
            int(values["model.n_heads"]),
        )
        lr, seed = float(values["train.lr"]), int(values["seed"])
    except (KeyError, ValueError):
        return None
    rung = next((r for r in plan.rungs if (r.n_layers, r.dim, r.n_heads) == shape), None)
    # variant_overrides: without what names no variant (the experiment, and what a launcher
    # adds, e.g. train.progress=false when runs go side by side: glmlab/cluster/local.py).
    rest = run_address(
        variant_overrides([o for o in run.result.overrides if _key(o) not in LADDER_KEYS])
    )
    if rung is None or rest not in idents:
        return None
    return idents.index(rest), rung, lr, seed


def load_ladder(sweep: Sweep) -> Ladder | None:
    """The ladder of a loaded sweep, or None when the sweep is no ladder (no ladder.json)."""
    path = Path(sweep.dir) / LADDER_FILE
    if not path.exists():
        return None
    plan = LadderPlan.from_dict(read_json(path)["plan"])
    labels = _labels(plan.variants)
    idents = [run_address(variant_overrides(list(v))) for v in plan.variants]
    settings = report_settings(Path(sweep.dir))
    wanted = settings.get("baseline")
    baseline = next((lab for lab in labels if _is_baseline(lab, wanted)), None)
    grid_points: dict[tuple[str, str], dict[float, GridPoint]] = {}
    verdict_runs: dict[tuple[str, str], list[Run]] = {}
    unmatched = []
    for run in sweep.runs:
        found = _classify(run, plan, idents)
        if found is None:
            unmatched.append(run)
            continue
        vi, rung, lr, seed = found
        key = (labels[vi], rung.name)
        if seed == plan.tuning_seed:
            values = run.result.to_dict() if run.result.finished else {"status": run.status}
            grid_points.setdefault(key, {})[lr] = GridPoint.from_result(lr, values)
        elif seed in plan.seeds:
            verdict_runs.setdefault(key, []).append(run)
    grid = {}
    for label in labels:
        for rung in plan.rungs:
            have = grid_points.get((label, rung.name), {})
            points = [have.get(lr, GridPoint(lr, "missing", None)) for lr in plan.lr_grid]
            grid[(label, rung.name)] = choose_lr(points)
    ladder = Ladder(plan, labels, baseline, grid, verdict_runs, {}, unmatched)
    ladder.margins = {m: margin_of(m, settings.get("margin")) for m in sweep.primary}
    ladder.control = bool(settings.get("control"))
    for metric in sweep.primary:
        ladder.trends[metric] = _trend(ladder, metric)
    _judge(ladder)
    return ladder


def _arm_count(ladder: Ladder, label: str) -> RunCount:
    """An arm's seed runs over every rung."""
    total = RunCount(0, 0, 0)
    for rung in ladder.plan.rungs:
        total += count_runs(r.status for r in ladder.verdict_runs.get((label, rung.name), []))
    return total


def _judge(ladder: Ladder) -> None:
    """Every test of the ladder's verdicts in one family, adjusted; then the verdicts."""
    if ladder.baseline is None:
        return
    others = [lab for lab in ladder.labels if lab != ladder.baseline]
    for metric, trend in ladder.trends.items():
        for label in others:
            if label in trend.rungs:
                register(ladder.family, label, metric, trend.rungs[label], ladder.margins[metric])
    base = _arm_count(ladder, ladder.baseline)
    for label in others:
        ladder.stability[label] = stability_test(_arm_count(ladder, label), base)
        register_stability(ladder.family, label, ladder.stability[label])
    ladder.family.adjust()
    for metric, trend in ladder.trends.items():
        info = metric_info(metric)
        for label in others:
            if label not in trend.rungs:
                continue
            edge = [
                f"{lab} @ {rung.name}"
                for lab in (label, ladder.baseline)
                for rung in ladder.plan.rungs
                if (choice := ladder.grid.get((lab, rung.name))) is not None and choice.warning
            ]

            def meet(
                lo: float, hi: float, label: str = label, fit: FitResult | None = trend.fit
            ) -> float | None:
                return crossover(fit, label, ladder.baseline, lo, hi) if fit else None

            trend.verdicts[label] = judge(
                ladder.family,
                label,
                metric,
                trend.rungs[label],
                higher_is_better=info.higher_is_better,
                margin=ladder.margins[metric],
                stability=ladder.stability[label],
                digits=info.digits,
                grid_edge=edge,
                meet=meet,
            )


def _trend(ladder: Ladder, metric: str) -> MetricTrend:
    plan, out = ladder.plan, MetricTrend(metric)
    info = metric_info(metric)
    for rung in plan.rungs:
        variants = [
            Variant(label, list(ladder.verdict_runs.get((label, rung.name), [])))
            for label in ladder.labels
        ]
        base = next((v for v in variants if v.label == ladder.baseline), None)
        tests = assess_metric(variants, base, metric)
        out.tests[rung.name] = tests
        check = reference_check([r for v in variants for r in v.runs], metric, tests.intervals)
        for v in variants:
            values = v.values(metric)
            if values:
                out.cells.setdefault(v.label, {})[rung.flops] = values
            if base is None or v is base:
                continue
            behind = ()
            if check is not None:
                behind = tuple(
                    f"{lab} ({REFERENCES[check[0]]})"
                    for lab in (v.label, base.label)
                    if check[2].get(lab) == "not past"
                )
            out.rungs.setdefault(v.label, []).append(
                RungResult(
                    rung.name,
                    rung.flops,
                    tests.diffs.get(v.label),
                    tests.counts[v.label],
                    tests.counts[base.label],
                    behind,
                )
            )
    flip = bool(info.higher_is_better) and all(
        0.0 <= y <= 1.0 for byc in out.cells.values() for ys in byc.values() for y in ys
    )
    points = {v: [(c, y) for c, ys in byc.items() for y in ys] for v, byc in out.cells.items()}
    if points:
        out.fit = fit_power_laws(points, plan.fit, flip=flip)
        if plan.bootstrap > 0:
            out.boot = bootstrap_fits(
                out.cells,
                plan.fit,
                baseline=ladder.baseline,
                target=plan.target_compute,
                n_boot=plan.bootstrap,
                flip=flip,
            )
    for label in out.rungs:
        if out.fit is not None and label in out.fit.curves and ladder.baseline in out.fit.curves:
            out.gaps[label] = out.fit.predict(label, plan.target_compute) - out.fit.predict(
                ladder.baseline, plan.target_compute
            )
    return out
