"""Are the report's tests calibrated? Simulated sweeps pushed through the report's own code.

Each simulated sweep has a variant and a baseline, ``n`` seeds each, scored on ``m`` fresh
items drawn from a population: an item's per-token loss = item difficulty (shared by all
runs) + variant x item interaction + the run's seed effect + the run's item noise (seed x
item), with each item's token count. Two runs of one seed share part of their seed effect
and item noise (``shared``: common random numbers, as variants trained from one seed's
initialisation and data order do). Under the null the two arms have the same mean over
the item population; with an effect the variant is ``EFFECT`` nats worse. Every sweep goes
through :func:`glmlab.report.stats.compare_arms` (and the arm intervals through
:func:`glmlab.report.stats.arm_estimate`): the functions the report calls.

Printed per regime, seed count and path (paired; unpaired, the variant one seed short, as
after a diverged run; seeds only, no per-item scores): the false-positive rate at 0.05,
the 95% interval's coverage of the true difference under the effect, the coverage of an
arm's own interval, the mean interval half-width, and the previous method's (a percentile
hierarchical bootstrap, :func:`legacy_bootstrap_p`) false-positive rate. One more line:
how often a null ladder (3 rungs x 2 metrics) prints "significant" somewhere, per-metric
Holm (the previous rule) against one Holm family per report. The table in
docs/REPORTS.md is this script's output.

    python benchmarks/calibration.py                      # 2000 sweeps per cell
    python benchmarks/calibration.py --sims 300 --json out.json
    python benchmarks/calibration.py --measure sweeps/span_shuffle_ablation
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from statsmodels.stats.multitest import multipletests

from glmlab.report.stats import Arm, RunItems, arm_estimate, compare_arms

EFFECT = 0.05  # nats: the known effect for coverage
CLOZE_EFFECT = 0.25  # logit shift of a right cloze answer (about 0.05 in accuracy)
PATHS = ("paired", "unpaired", "seeds only")


@dataclass(frozen=True)
class Regime:
    """Variance components of a simulated sweep (nats per token, sds)."""

    name: str
    seed_sd: float  # a run's seed effect
    noise_sd: float  # a run's item noise (seed x item), per item
    interaction_sd: float  # variant x item
    shared: float = 0.0  # correlation of one seed's two runs (seed effect and item noise)
    item_sd: float = 0.5  # item difficulty, shared by every run
    items: int = 128
    cloze: bool = False  # 0/1 credit: the sds are on the logit scale of a right answer


REGIMES = (
    # Measured on the span-shuffle sweep (3 seeds x 2 variants, 800 steps on the CPU):
    # token infilling; `--measure SWEEP` measures another.
    Regime("measured: span shuffle, token infilling", 0.0705, 0.149, 0.0, 0.43, 0.465),
    Regime("seed-dominated (seed 0.10, noise 0.05)", 0.10, 0.05, 0.02),
    Regime("seed-dominated (seed 0.05, noise 0.20)", 0.05, 0.20, 0.02),
    Regime("item-dominated (seed 0.005, interaction 0.10)", 0.005, 0.20, 0.10),
    # Neither dominates: where Satterthwaite's df alone is liberal with 3 seeds.
    Regime("mixed (seed 0.03, interaction 0.10)", 0.03, 0.10, 0.10),
    # Cloze on the logit scale: seed 0.3 is ~0.07 in accuracy, as measured (256 items).
    Regime("cloze, 0/1 credit (logit seed 0.3)", 0.3, 0.0, 0.1, 0.2, 1.0, 256, cloze=True),
)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate(
    rng: np.random.Generator, r: Regime, n: int, effect: float = 0.0
) -> tuple[RunItems, RunItems, float]:
    """(variant, baseline, the baseline's expected value on these items) of one simulated
    sweep with seeds 0..n-1 (the population mean of either arm is 5.0 + its effect; cloze:
    ``effect`` shifts the variant's logit, see :func:`truth`)."""
    m = r.items
    tokens = np.ones(m) if r.cloze else rng.integers(2, 40, m).astype(np.float64)
    difficulty = (-0.6 if r.cloze else 5.0) + rng.normal(0.0, r.item_sd, m)
    common_seed = rng.normal(0.0, r.seed_sd, n)
    common_noise = rng.normal(0.0, r.noise_sd, (n, m))
    keep, fresh = math.sqrt(r.shared), math.sqrt(1.0 - r.shared)
    given_items = []

    def arm(shift: float) -> RunItems:
        inter = rng.normal(0.0, r.interaction_sd, m)
        seed = keep * common_seed + fresh * rng.normal(0.0, r.seed_sd, n)
        if r.cloze:
            p = _logistic(difficulty + shift + inter + seed[:, None])
            given_items.append(float(p.mean()))
            return RunItems((rng.random((n, m)) < p).astype(np.float64), np.ones((n, m)))
        given_items.append(float(((difficulty + shift + inter) * tokens).sum() / tokens.sum()))
        noise = keep * common_noise + fresh * rng.normal(0.0, r.noise_sd, (n, m))
        per_token = difficulty + shift + inter + seed[:, None] + noise
        return RunItems(per_token * tokens, np.broadcast_to(tokens, (n, m)).copy())

    variant, baseline = arm(effect), arm(0.0)
    return variant, baseline, given_items[1]


def truth(r: Regime, effect: float) -> tuple[float, float]:
    """(the population difference, the baseline's population mean) of a regime: for a
    loss ``effect`` and 5.0; for cloze by Monte Carlo over items, seeds and interactions."""
    if not r.cloze:
        return effect, 5.0
    rng = np.random.default_rng(0)
    x = -0.6 + rng.normal(0.0, r.item_sd, 2_000_000) + rng.normal(0.0, r.seed_sd, 2_000_000)
    x += rng.normal(0.0, r.interaction_sd, 2_000_000)
    base = float(_logistic(x).mean())
    return float(_logistic(x + effect).mean()) - base, base


def _arm(items: RunItems, seeds: Iterable[int], with_items: bool) -> Arm:
    values = tuple(float(v) for v in items.run_values())
    return Arm(values, tuple(seeds), items if with_items else None)


def arms_for(path: str, variant: RunItems, baseline: RunItems) -> tuple[Arm, Arm]:
    """The two arms the report would build on ``path``."""
    n = variant.n_runs
    if path == "unpaired":  # the variant's last seed diverged: unequal seed sets
        short = RunItems(variant.num[:-1], variant.den[:-1])
        return _arm(short, range(n - 1), True), _arm(baseline, range(n), True)
    with_items = path != "seeds only"
    return _arm(variant, range(n), with_items), _arm(baseline, range(n), with_items)


def legacy_bootstrap_p(
    variant: RunItems, baseline: RunItems, n_boot: int = 1000, seed: int = 0
) -> float:
    """The p-value of the method glmlab used before (a percentile hierarchical bootstrap
    over seeds, rescaled to the seed variance, and items): kept to show its level."""
    rng = np.random.default_rng(seed)
    m = variant.n_items
    weights = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64)

    def side(r: RunItems) -> np.ndarray:
        values = (weights @ r.num.T) / (weights @ r.den.T)
        n = r.n_runs
        z = r.linearised()
        v_run = float(r.run_values().var(ddof=1))
        resid = z - z.mean(1, keepdims=True) - z.mean(0, keepdims=True) + z.mean()
        v_res = float((resid**2).sum() / ((n - 1) * (m - 1)))
        scale = math.sqrt(n / (n - 1) * max(0.0, v_run - v_res / m) / v_run) if v_run else 0.0
        pick = rng.integers(0, n, size=(n_boot, n))
        everyone = values.mean(1)
        return everyone + scale * (np.take_along_axis(values, pick, 1).mean(1) - everyone)

    reps = side(variant) - side(baseline)
    below = (np.count_nonzero(reps <= 0) + 1) / (n_boot + 1)
    above = (np.count_nonzero(reps >= 0) + 1) / (n_boot + 1)
    return min(1.0, 2.0 * min(below, above))


def run_cell(r: Regime, n: int, path: str, sims: int, seed: int, legacy: bool) -> dict:
    """False-positive rate, coverage and interval width of one regime x seeds x path.
    Seeds only (no per-item scores) cannot see the item sample, so its target is the
    difference on these items: its sweeps have no variant x item interaction, and an
    arm's interval is checked against the arm's expected value on these items."""
    rng = np.random.default_rng([seed, n, PATHS.index(path)])
    if path == "seeds only":
        r = replace(r, interaction_sd=0.0)
    false_pos = covered = arm_covered = arm_count = legacy_fp = 0
    half = []
    effect = CLOZE_EFFECT if r.cloze else EFFECT
    true_diff, true_base = truth(r, effect)
    for k in range(sims):
        v, b, _ = simulate(rng, r, n)
        d = compare_arms(*arms_for(path, v, b))
        false_pos += d is not None and d.p < 0.05
        if legacy:
            legacy_fp += legacy_bootstrap_p(v, b, seed=k) < 0.05
        v, b, given = simulate(rng, r, n, effect)
        va, ba = arms_for(path, v, b)
        d = compare_arms(va, ba)
        if d is not None:
            covered += d.low <= true_diff <= d.high
            half.append((d.high - d.low) / 2)
        est = arm_estimate(ba)
        target = given if path == "seeds only" else true_base
        if est is not None and est.low is not None:
            arm_count += 1
            arm_covered += est.low <= target <= est.high
    out = {
        "regime": r.name,
        "seeds": n,
        "path": path,
        "sims": sims,
        "false_positive_rate": false_pos / sims,
        "coverage": covered / sims,
        "arm_coverage": arm_covered / arm_count if arm_count else None,
        "mean_half_width": float(np.mean(half)) if half else None,
    }
    if legacy:
        out["legacy_bootstrap_fpr"] = legacy_fp / sims
    return out


def family_cell(r: Regime, n: int, sims: int, seed: int) -> dict:
    """How often a null ladder of 3 rungs x 2 metrics says "significant" somewhere."""
    rng = np.random.default_rng([seed, n, 99])
    per_metric = family = 0
    for _ in range(sims):
        ps = []
        for _metric in range(2):
            row = []
            for _rung in range(3):
                v, b, _ = simulate(rng, r, n)
                row.append(compare_arms(*arms_for("paired", v, b)).p)
            ps.append(row)
        per_metric += any(p < 0.05 for row in ps for p in row)  # one rung per test: raw
        flat = [p for row in ps for p in row]
        family += bool(multipletests(flat, alpha=0.05, method="holm")[0].any())
    return {"regime": r.name, "seeds": n, "sims": sims, "unadjusted": per_metric / sims,
            "holm_family": family / sims}  # fmt: skip


def measure(sweep_dir: Path, task: str = "infill_token") -> Regime:
    """A regime with the variance components of a real two-variant sweep's per-item
    scores (``task``): per item, the per-token loss of each run."""
    from glmlab.eval.metrics import task_metric
    from glmlab.report.assess import run_items
    from glmlab.report.load import load_sweep

    sweep = load_sweep(sweep_dir)
    metric = task_metric(task)
    arms = []
    for v in sweep.variants[:2]:
        runs = sorted((r for r in v.runs if metric in r.metrics), key=lambda r: str(r.seed))
        pairs = [run_items(r, metric) for r in runs]
        arms.append(np.stack([num / den for num, den in pairs]))
    y_v, y_b = arms
    n, m = y_b.shape

    def parts(y: np.ndarray) -> tuple[float, float]:
        rows, cols, grand = y.mean(1), y.mean(0), y.mean()
        resid = y - rows[:, None] - cols[None, :] + grand
        ms_res = float((resid**2).sum() / ((n - 1) * (m - 1)))
        ms_seed = m * float(((rows - grand) ** 2).sum()) / (n - 1)
        return max(0.0, (ms_seed - ms_res) / m), ms_res

    (sv, rv), (sb, rb) = parts(y_v), parts(y_b)
    e = y_v.mean(0) - y_b.mean(0)
    inter = max(0.0, float(e.var(ddof=1)) - rv / n - rb / n)

    def resid(y: np.ndarray) -> np.ndarray:
        return y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()

    shared = float(np.corrcoef(resid(y_v).ravel(), resid(y_b).ravel())[0, 1])
    return Regime(
        f"measured: {sweep.name}, {task} ({n} seeds, {m} items)",
        seed_sd=round(math.sqrt((sv + sb) / 2), 4),
        noise_sd=round(math.sqrt((rv + rb) / 2), 4),
        interaction_sd=round(math.sqrt(inter), 4),
        shared=round(max(0.0, shared), 3),
        item_sd=round(float(y_b.mean(0).std(ddof=1)), 3),
        items=m,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=2000, help="simulated sweeps per cell")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--seed", type=int, default=20240605)
    ap.add_argument("--measure", type=Path, help="add a regime measured on this sweep")
    ap.add_argument("--regime", help="the measured regime as JSON (Regime's fields)")
    ap.add_argument("--no-legacy", action="store_true", help="skip the previous method")
    ap.add_argument(
        "--no-plain", action="store_true", help="skip plain Satterthwaite (no seed guard)"
    )
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    regimes = list(REGIMES)
    if args.measure:
        regimes.insert(0, measure(args.measure))
    if args.regime:
        regimes.insert(0, Regime(**json.loads(args.regime)))
    for r in regimes:
        print(f"# {r.name}: {json.dumps(asdict(replace(r, name='')))}", flush=True)
    rows = []
    head = "| regime | seeds | path | FPR at 0.05 | 95% coverage | arm coverage | half-width | previous FPR |"
    print(head + "\n" + "|---" * 8 + "|")
    for r in regimes:
        for n in args.seeds:
            for path in PATHS:
                if r.cloze and path == "seeds only":  # cloze always saves per-item credit
                    continue
                legacy = not args.no_legacy and path == "paired"
                row = run_cell(r, n, path, args.sims, args.seed, legacy)
                rows.append(row)
                print(
                    f"| {r.name} | {n} | {path} | {row['false_positive_rate']:.3f} | "
                    f"{row['coverage']:.3f} | {_f(row['arm_coverage'])} | "
                    f"{_f(row['mean_half_width'], 4)} | {_f(row.get('legacy_bootstrap_fpr'))} |",
                    flush=True,
                )
    if not args.no_plain:  # what the seed term's guard in Satterthwaite's df is for
        import glmlab.report.stats as stats

        guard, stats.SEED_GUARD = stats.SEED_GUARD, None
        mixed = next(r for r in REGIMES if r.name.startswith("mixed"))
        row = run_cell(mixed, 3, "paired", args.sims, args.seed, False)
        stats.SEED_GUARD = guard
        print(
            f"plain Satterthwaite (no seed guard), {mixed.name}, 3 seeds, paired: FPR "
            f"{row['false_positive_rate']:.3f}, coverage {row['coverage']:.3f}"
        )
        rows.append({**row, "path": "paired, plain Satterthwaite"})
    fam = [family_cell(r, 3, max(args.sims // 2, 100), args.seed) for r in regimes[:3]]
    for f in fam:
        print(
            f"null ladder, {f['regime']}, 3 seeds, 3 rungs x 2 metrics ({f['sims']} ladders): "
            f"'significant' somewhere {f['unadjusted']:.3f} unadjusted, "
            f"{f['holm_family']:.3f} with one Holm family"
        )
    if args.json:
        args.json.write_text(json.dumps({"cells": rows, "family": fam}, indent=2) + "\n")
    return 0


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
