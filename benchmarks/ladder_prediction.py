"""How often a ladder's prediction of a held-out rung falls inside its 95% interval.

Simulates ladders of 2 variants x 4 rungs x k seeds from a known truth, fits on the 3
smaller rungs and predicts the largest with the report's own code path
(glmlab.ladder.predict.select_fit with ``fit: auto``, glmlab.ladder.holdout.check_holdout;
per-rung differences by Welch's t-test over seeds), and counts, over ``--repeats`` ladders:

- **value coverage**: the held-out rung's measured mean (per variant) inside its 95%
  prediction interval;
- **gap coverage**: the measured gap (variant - baseline) inside its interval;
- **no prediction**: ladders whose smaller rungs determine no fit (no interval to score);
- mean absolute error of the predicted gap, and how often the smaller rungs' sign agrees
  with the held-out rung's (decision agreement).

Regimes (the numbers near the CPU ladder's: loss ~5 nats at C ~1e12 FLOPs, alpha ~0.09,
seed sd 0.03 nats, rungs ~2x apart in compute):

- ``power``: the truth is a pure power law (the form ``auto`` picks with 3 rungs): the
  intervals should cover at the stated 95%;
- ``saturating``: the truth saturates (E = 2.5 nats), fitted as a pure power law: a wrong
  form, where the lack-of-fit term must widen the interval, and the rate says how much it
  under-covers;
- ``accuracy``: an accuracy through its loss (a sigmoid in the loss with a 0.25 floor),
  predicted in two steps (glmlab.ladder.link.TwoStep).

    python benchmarks/ladder_prediction.py                  # 500 repeats per regime
    python benchmarks/ladder_prediction.py --repeats 100 --seeds 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glmlab.ladder.fit import RungDiff
from glmlab.ladder.holdout import check_holdout
from glmlab.ladder.link import TwoStep, fit_link
from glmlab.ladder.predict import select_fit
from glmlab.report.stats import Arm, compare_arms

RUNGS = (7.9e11, 1.8e12, 3.6e12, 6.7e12)  # the CPU ladder's compute, and one step more
ALPHA, LOSS_AT_S, EFFECT, SEED_SD = 0.09, 5.5, 0.99, 0.03
REGIMES = ("power", "saturating", "accuracy")


@dataclass
class Tally:
    """Counts over repeats of one regime."""

    repeats: int = 0
    no_prediction: int = 0
    value_checks: int = 0
    value_covered: int = 0
    gap_checks: int = 0
    gap_covered: int = 0
    gap_errors: list[float] = field(default_factory=list)
    sign_agree: int = 0
    sign_total: int = 0

    def row(self, name: str) -> str:
        vc = self.value_covered / self.value_checks if self.value_checks else math.nan
        gc = self.gap_covered / self.gap_checks if self.gap_checks else math.nan
        mae = statistics.fmean(abs(e) for e in self.gap_errors) if self.gap_errors else math.nan
        agree = self.sign_agree / self.sign_total if self.sign_total else math.nan
        return (
            f"| {name} | {self.repeats} | {self.no_prediction} | {vc:.3f} ({self.value_checks}) | "
            f"{gc:.3f} ({self.gap_checks}) | {mae:.4f} | {agree:.3f} |"
        )


def truth(regime: str, variant: str, c: float) -> float:
    """The true mean loss of ``variant`` at compute ``c``."""
    scale = EFFECT if variant == "v" else 1.0
    if regime == "saturating":  # E = 2.5 nats, and a steeper reducible part to match
        e, alpha = 2.5, 0.2
        return e + scale * (LOSS_AT_S - e) * (c / RUNGS[0]) ** -alpha
    return scale * LOSS_AT_S * (c / RUNGS[0]) ** -ALPHA


def sigmoid(loss: float) -> float:
    return 0.25 + 0.75 / (1.0 + math.exp(3.0 * (loss - 5.2)))


def one_ladder(regime: str, seeds: int, rng: np.random.Generator, n_boot: int) -> dict:
    """Simulate one ladder; return its holdout check."""
    variants = ("b", "v")
    loss = {
        v: {c: truth(regime, v, c) + rng.normal(0, SEED_SD, seeds) for c in RUNGS} for v in variants
    }
    metric = loss
    if regime == "accuracy":
        metric = {
            v: {
                c: np.array([sigmoid(x) for x in ys]) + rng.normal(0, 0.01, seeds)
                for c, ys in byc.items()
            }
            for v, byc in loss.items()
        }
    fit_c, held = RUNGS[:-1], RUNGS[-1]
    diffs = {}
    for c in RUNGS:
        v, b = metric["v"][c], metric["b"][c]  # unpaired seeds: the report's Welch path
        w = compare_arms(
            Arm(tuple(v), tuple(range(len(v)))), Arm(tuple(b), tuple(range(9, 9 + len(b))))
        )
        half = w.se * 4.303 if seeds == 3 else w.se * 2.0  # only the sign and the call matter
        diffs.setdefault("v", []).append(
            RungDiff(f"{c:.2g}", c, w.diff, w.diff - half, w.diff + half, w.significant)
        )
    if regime == "accuracy":
        sel = select_fit(
            {v: {c: list(loss[v][c]) for c in fit_c} for v in variants}, "auto", n_boot=n_boot
        )
        pred = None
        if sel.fit is not None and sel.determined:
            links = {
                v: fit_link(
                    [x for c in fit_c for x in loss[v][c]],
                    [y for c in fit_c for y in metric[v][c]],
                    0.25,
                )
                for v in variants
            }
            if all(link.determined for link in links.values()):
                pred = TwoStep(sel.fit, links)
    else:
        sel = select_fit(
            {v: {c: list(metric[v][c]) for c in fit_c} for v in variants}, "auto", n_boot=n_boot
        )
        pred = sel.fit if sel.fit is not None and sel.determined else None
    return check_holdout(
        pred,
        rung=f"{held:.2g}",
        measured={v: list(metric[v][held]) for v in variants},
        compute={v: held for v in variants},
        diffs=diffs,
        baseline="b",
    )


def run(regime: str, repeats: int, seeds: int, n_boot: int, seed: int = 0) -> Tally:
    """Tally ``repeats`` simulated ladders of ``regime``."""
    rng = np.random.default_rng([seed, REGIMES.index(regime)])
    tally = Tally()
    for _ in range(repeats):
        check = one_ladder(regime, seeds, rng, n_boot)
        tally.repeats += 1
        if not check.values:
            tally.no_prediction += 1
        for v in check.values:
            tally.value_checks += 1
            tally.value_covered += v.covered
        for g in check.gaps:
            if g.predicted is not None and g.measured is not None:
                tally.gap_checks += 1
                tally.gap_covered += bool(g.covered)
                tally.gap_errors.append(g.error)
            sign, _, n = g.rungs_agreeing()
            tally.sign_agree += sign
            tally.sign_total += n
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=40, help="seed-resample refits per fit")
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    args = ap.parse_args(argv)
    print(f"{args.repeats} ladders per regime, {args.seeds} seeds, {args.bootstrap} refits per fit")
    print(
        "| regime | ladders | no prediction | value coverage (checks) | gap coverage (checks) | gap MAE | smaller rungs' sign agrees |"
    )
    print("|---|---|---|---|---|---|---|")
    for regime in args.regimes:
        start = time.perf_counter()
        tally = run(regime, args.repeats, args.seeds, args.bootstrap)
        print(tally.row(regime), f"<!-- {time.perf_counter() - start:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
