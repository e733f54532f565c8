"""How the claim verdicts' tests behave, computed exactly or simulated: the statistics behind
docs/EVALUATION.md, "Stability" and "Claims".

1. Rates over runs (``diverged``, ``stalled``: glmlab/report/rates.py): the size of
   Boschloo's exact test at 5% when both arms share one true rate, computed exactly by
   summing the probability of every outcome (k of n runs against j of m), for 3 and 5 seeds
   per arm, with Fisher's exact test beside it; and its power for a few true differences.
2. The claim judge (glmlab/report/claims.py): over simulated sweeps of 3 seeds per arm
   with a normal per-seed metric, how often a "worse" claim comes out *reproduced* or
   *opposite* when there is no true difference (each should be about 2.5%), and how often
   an "equivalent" claim comes out *reproduced* when the true difference is 0 (power) or
   twice the margin (a false equivalence: at most 2.5%).

    python benchmarks/rates.py                 # about 20 s
    python benchmarks/rates.py --sweeps 500    # fewer simulated sweeps
"""

from __future__ import annotations

import argparse
import functools
import json

import numpy as np
from scipy import stats as sps

from glmlab.report.claims import Difference, judge
from glmlab.report.rates import rate_test
from glmlab.report.stats import ALPHA, Arm, compare_arms


@functools.cache
def _p(a: int, n: int, b: int, m: int) -> float:
    test = rate_test([1.0] * a + [0.0] * (n - a), [1.0] * b + [0.0] * (m - b))
    return test.p


@functools.cache
def _fisher(a: int, n: int, b: int, m: int) -> float:
    return float(sps.fisher_exact([[a, b], [n - a, m - b]]).pvalue)


def rejection_rate(p_variant: float, p_base: float, n: int, test=_p) -> float:
    """The exact probability that the test rejects at ALPHA with n runs per arm."""
    out = 0.0
    for a in range(n + 1):
        for b in range(n + 1):
            prob = sps.binom.pmf(a, n, p_variant) * sps.binom.pmf(b, n, p_base)
            if test(a, n, b, n) < ALPHA:
                out += prob
    return float(out)


def judge_rates(sweeps: int, seed: int = 0) -> dict[str, float]:
    """Simulated sweeps (3 seeds per arm, sd 1 per seed): the share of each verdict."""
    rng = np.random.default_rng(seed)

    def share(true_diff: float, expect: str, margin: float | None, verdict: str) -> float:
        hits = 0
        for _ in range(sweeps):
            a, b = rng.normal(true_diff, 1.0, 3), rng.normal(0.0, 1.0, 3)
            # Unpaired seeds: the report's Welch path (glmlab/report/stats.py).
            w = compare_arms(Arm(tuple(a), (0, 1, 2)), Arm(tuple(b), (3, 4, 5)))
            d = Difference(w.diff, w.low, w.high, w.p, w.significant)
            out = judge(d, expect=expect, higher_is_better=False, margin=margin)
            hits += out.verdict == verdict
        return hits / sweeps

    return {
        "worse, no true difference: reproduced": share(0.0, "worse", None, "reproduced"),
        "worse, no true difference: opposite": share(0.0, "worse", None, "opposite"),
        "equivalent (margin 3 sd), true 0: reproduced": share(0.0, "equivalent", 3.0, "reproduced"),
        "equivalent (margin 1 sd), true 2 sd: reproduced": share(
            2.0, "equivalent", 1.0, "reproduced"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=4000, help="simulated sweeps per cell")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    out: dict[str, dict[str, float]] = {"size": {}, "power": {}}
    print("Size at 5% (both arms at one true rate), Boschloo / Fisher, exact:")
    for n in (3, 5):
        for rate in (0.1, 0.3, 0.5, 0.7, 0.9):
            b, f = rejection_rate(rate, rate, n), rejection_rate(rate, rate, n, _fisher)
            out["size"][f"n={n} rate={rate}"] = b
            print(f"  {n} runs per arm, rate {rate}: {b:.4f} / {f:.4f}")
    print("Power at 5%, Boschloo / Fisher, exact:")
    for n in (3, 5):
        for pv, pb in ((1.0, 0.0), (0.9, 0.1), (0.7, 0.0), (0.5, 0.0)):
            b, f = rejection_rate(pv, pb, n), rejection_rate(pv, pb, n, _fisher)
            out["power"][f"n={n} {pv} vs {pb}"] = b
            print(f"  {n} runs per arm, {pv} against {pb}: {b:.3f} / {f:.3f}")
    out["judge"] = judge_rates(args.sweeps)
    print(f"Claim verdicts over {args.sweeps} simulated sweeps (Welch, 3 seeds per arm):")
    for key, value in out["judge"].items():
        print(f"  {key}: {value:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
