"""A ladder sweep read for its report (:class:`Ladder`): the rungs, each arm's runs by role
(glmlab/ladder/roles.py: tuning, verdict, superseded), its lr as the grid on disk chooses
it and as its seed runs used it, and per metric the trend across scale
(glmlab/report/ladder_trend.py); glmlab/report/ladder_markdown.py writes it,
ladder_plot.py plots it, ladder_export.py tabulates it for ``glmlab results``.

Everything is read from the run directories and ``ladder.json`` (the plan the sweeper
saved). Only verdict runs enter a verdict (every one of them, diverged and failed ones
counted: glmlab/report/ladder_verdicts.py): tuning runs feed the lr choice (and the lr
sensitivity rows), superseded runs are listed and left out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmlab.ladder.compute import MAX_EPOCHS
from glmlab.ladder.lr import GridPoint, LrChoice, choose_lr
from glmlab.ladder.roles import LADDER_FILE, idents, place, read_plan
from glmlab.ladder.spec import LadderPlan, Rung, show_lr
from glmlab.report.family import Family
from glmlab.report.load import Run, Sweep, _is_baseline
from glmlab.report.stability import Stability
from glmlab.runs.layout import RunStatus
from glmlab.runs.naming import variant_overrides

__all__ = ["LADDER_FILE", "LADDER_PLOT", "Arm", "Ladder", "load_ladder"]

LADDER_PLOT = "ladder.png"
NOT_VARIANT = {"experiment", "ladder"}  # group choices every job of the sweep shares


@dataclass
class Arm:
    """One variant at one rung: its grid (tuning) runs, the lr its seeds ran at, its
    verdict runs and any superseded ones."""

    label: str
    rung: Rung
    choice: LrChoice  # what the grid on disk chooses now
    ran_lr: float | None  # what the seed runs used (ladder.json's choice)
    runs: list[Run] = field(default_factory=list)  # verdict runs at ran_lr
    superseded: list[Run] = field(default_factory=list)
    grid_runs: list[Run] = field(default_factory=list)

    @property
    def lr(self) -> float | None:
        """The arm's lr: what its seed runs used, else what the grid chooses."""
        return self.ran_lr if self.ran_lr is not None else self.choice.lr

    @property
    def lr_moved(self) -> bool:
        """The grid on disk now chooses another lr than the seed runs used."""
        return (
            self.ran_lr is not None
            and self.choice.lr is not None
            and show_lr(self.ran_lr) != show_lr(self.choice.lr)
        )

    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == RunStatus.COMPLETED]

    def compute(self) -> float:
        """The arm's training FLOPs as its runs measured them (result.json's ``compute``,
        the head at the scored positions), else the plan's upper bound."""
        for runs in (self.completed(), self.runs, self.grid_runs):
            flops = [float((r.result.compute or {}).get("flops") or 0.0) for r in runs]
            flops = [f for f in flops if f > 0 and math.isfinite(f)]
            if flops:
                return statistics.fmean(flops)
        return self.rung.flops

    def data(self) -> dict[str, Any]:
        """What a run of the arm read of its data (``compute.data``) and its tokens per
        total parameter; {} for runs recorded without them."""
        for r in [*self.runs, *self.grid_runs]:
            compute = r.result.compute or {}
            data = compute.get("data") or {}
            if data:
                return {**data, "tokens_per_param": compute.get("tokens_per_param")}
        return {}

    def why_missing(self) -> str:
        """Why the arm has no completed verdict run ('' when it has)."""
        if self.completed():
            return ""
        if self.lr is None:
            return f"no learning rate: {self.choice.problem or 'no grid run finished'}"
        if not self.runs:
            return f"no seed run at lr {show_lr(self.lr)}"
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return (
            f"0 of {len(self.runs)} seed runs completed ("
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + ")"
        )


@dataclass
class Ladder:
    """A ladder sweep as the report reads it."""

    plan: LadderPlan
    labels: list[str]  # one per plan variant, in plan order
    baseline: str | None
    arms: dict[tuple[str, str], Arm]  # (variant label, rung name) -> arm
    unmatched: list[Run]
    trends: dict[str, Any] = field(default_factory=dict)  # metric -> MetricTrend
    family: Family = field(default_factory=lambda: Family("the ladder's verdicts"))
    stability: dict[str, Stability] = field(default_factory=dict)  # variant -> divergence
    control: bool = False  # report.control is set (the ladder's sweeper adds no A/A arm yet)

    def rung(self, name: str) -> Rung:
        return next(r for r in self.plan.rungs if r.name == name)

    @property
    def grid(self) -> dict[tuple[str, str], LrChoice]:
        return {k: a.choice for k, a in self.arms.items()}

    @property
    def verdict_runs(self) -> dict[tuple[str, str], list[Run]]:
        return {k: a.runs for k, a in self.arms.items()}

    def rung_compute(self, rung: Rung) -> float:
        """A rung's measured C (geometric mean over its arms)."""
        values = [a.compute() for (_, name), a in self.arms.items() if name == rung.name]
        return math.exp(statistics.fmean(math.log(c) for c in values)) if values else rung.flops

    def superseded(self) -> list[Run]:
        return [r for a in self.arms.values() for r in a.superseded]

    def over_epochs(self) -> list[str]:
        """Rungs whose runs read their training split more than MAX_EPOCHS times."""
        out = []
        for r in self.plan.rungs:
            epochs = [a.data().get("epochs") for (_, n), a in self.arms.items() if n == r.name]
            worst = max((e for e in epochs if isinstance(e, int | float)), default=None)
            if worst is not None and worst > MAX_EPOCHS:
                out.append(f"{r.name} ({worst:.1f} epochs)")
        return out


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


def _grid_choice(plan: LadderPlan, runs: list[Run]) -> LrChoice:
    """The arm's lr from its tuning runs on disk (their seeds' mean per grid lr)."""
    by_lr: dict[str, list[GridPoint]] = {}
    for run in runs:
        lr = float(dict(o.split("=", 1) for o in run.result.overrides if "=" in o)["train.lr"])
        by_lr.setdefault(show_lr(lr), []).append(GridPoint.from_result(lr, run.result))
    points = []
    for lr in plan.lr_grid:
        have = by_lr.get(show_lr(lr), [])
        found = [*have, *[GridPoint(lr, "missing", None)] * (len(plan.grid_seeds()) - len(have))]
        points.append(GridPoint.combine(lr, found))
    return choose_lr(points, plan.lr_choice)


def load_ladder(sweep: Sweep) -> Ladder | None:
    """The ladder of a loaded sweep, or None when the sweep is no ladder (no ladder.json);
    computed once per loaded sweep (the report and the console lines share it)."""
    from glmlab.report.ladder_trend import build_trend
    from glmlab.report.ladder_verdicts import judge_ladder
    from glmlab.report.load import report_settings

    if "ladder" in sweep.cache:
        return sweep.cache["ladder"]

    plan = read_plan(Path(sweep.dir))
    if plan is None:
        sweep.cache["ladder"] = None
        return None
    labels = _labels(plan.variants)
    known = idents(plan)
    settings = report_settings(Path(sweep.dir))
    wanted = settings.get("baseline")
    baseline = next((lab for lab in labels if _is_baseline(lab, wanted)), None)
    found: dict[tuple[str, str], dict[str, list[Run]]] = {}
    unmatched = []
    for run in sweep.runs:
        where = place(run.result.overrides or [], plan, known)
        if where is None:
            unmatched.append(run)
            continue
        key = (labels[where.variant], where.rung.name)
        found.setdefault(key, {}).setdefault(where.role, []).append(run)
    arms = {}
    for vi, label in enumerate(labels):
        for rung in plan.rungs:
            roles = found.get((label, rung.name), {})
            choice = _grid_choice(plan, roles.get("tuning", []))
            ran = plan.chosen.get(plan.arm_key(plan.variants[vi], rung))
            arms[(label, rung.name)] = Arm(
                label,
                rung,
                choice,
                ran,
                roles.get("verdict", []),
                roles.get("superseded", []),
                roles.get("tuning", []),
            )
    ladder = Ladder(plan, labels, baseline, arms, unmatched)
    ladder.control = bool(settings.get("control"))
    for metric in sweep.primary:
        ladder.trends[metric] = build_trend(ladder, metric)
    judge_ladder(ladder, settings.get("margin"))
    sweep.cache["ladder"] = ladder
    return ladder
