"""Every experiment's sweep as a user runs it: wall time, load and the reference lines.

Runs the bare ``python -m glmlab`` (``default``: one run at the machine's scale) and
``python -m glmlab +experiment=<name> -m`` (nothing else, unless ``--override``) for
each experiment of conf/experiment/, one after another in a work directory, and prints per
experiment: the wall time, the load average before and after (the machine may be shared:
a wall time means little without it), the CPU time of all its processes (on a busy machine,
CPU time / runs at once estimates the wall time on idle cores), how many runs went at
once, the sweep's
reference lines (for every metric with a trivial reference, whether every variant's 95%
interval is past it: the infilling losses below the unigram level, cloze above chance; for
the single run, its summary's lines, each past its reference or not) and, per claim the
experiment tests (``report.claims``), its verdict: reproduced, opposite, not significant or
not testable at this scale, with the reason. These are the numbers of README's "Set up and
run" and "Experiments" table, its claim column included.

    python benchmarks/experiments.py                                  # all, ~30 min on 2 cores
    python benchmarks/experiments.py --experiments norm_ablation sentinel_ablation
    python benchmarks/experiments.py --json experiments.json --workdir /tmp/exp
    python benchmarks/experiments.py --override train.max_steps=6 ...   # a smoke test

The sweeps stay in ``--workdir`` (default: a new temporary directory), with their reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # `python benchmarks/experiments.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.session_cpu import run_counting_cpu  # noqa: E402

BARE = "default"  # the bare command: `python -m glmlab`, one run, scale=auto
EXPERIMENTS = [BARE, *sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))]
# The reference lines of a sweep's closing summary (glmlab.report.verdict_md.reference_console:
# the metrics every variant is past, a ⚠ line for those some variant is not), and of a single
# run's (glmlab.cli.summary: "<metric> (unigram 5.750): past unigram (...)").
REFERENCE_MARKS = (
    "every variant is past its trivial reference",
    "⚠ not clearly past the trivial reference",
    "one run per variant, no interval",
)
SINGLE_RUN_MARKS = (": past ", ": ⚠ NOT past ")
# What a single run's pass is judged on: the metrics a sweep report's reference lines judge.
SINGLE_RUN_JUDGED = ("token infilling loss", "cloze accuracy")
# A claim's line in it (glmlab.report.claims.claim_summary): "claim 'NAME': VERDICT (...)".
CLAIM_MARK = "claim '"


@dataclass
class ExperimentTiming:
    """One experiment's sweep: how long it took, under what load, and what it concluded."""

    experiment: str
    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the sweep's processes, its worker processes included
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    launched: str | None  # "6 runs, 2 at once, in 312 s"
    references: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)  # one line per claim, with its verdict
    passed: bool = False  # every variant past every reference
    last_line: str = ""

    def lines(self) -> list[str]:
        """The console lines for this experiment."""

        def load(avg: tuple[float, float, float]) -> str:
            return "/".join(f"{x:.2f}" for x in avg)

        out = [
            f"{self.experiment}: {self.wall_s / 60:.1f} min wall, {self.cpu_s / 60:.1f} min CPU "
            f"(exit {self.returncode}); load average before {load(self.load_before)}, "
            f"after {load(self.load_after)}",
            f"  {self.launched or 'runs at once: not reported'}",
        ]
        out += [f"  {line}" for line in self.references] or ["  no reference lines (no report)"]
        out += [f"  {line}" for line in self.claims] or ["  no claim lines (no report.claims)"]
        out.append(f"  {'PASS' if self.passed else 'NOT PAST THE REFERENCES'}: {self.last_line}")
        return out


def parse_summary(stdout: str) -> tuple[str | None, list[str], list[str], str]:
    """From a sweep's console output: the launch phrase, the reference lines, the claim
    lines and the last line (its outcome counts)."""
    launched, references, claims = None, [], []
    for raw in stdout.splitlines():
        line = raw.strip()
        if line.startswith("ran ") and (" at once" in line or "one at a time" in line):
            launched = line[len("ran ") :].split(" (")[0]
        elif line.startswith(CLAIM_MARK):
            claims.append(line)
        elif line.startswith(REFERENCE_MARKS):
            references.append(line)
        elif any(mark in line for mark in SINGLE_RUN_MARKS):  # glmlab.cli.summary's lines
            references.append(line)
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    return launched, references, claims, last


def past_references(references: list[str]) -> bool:
    """Whether every reference line says every variant is past its reference (its whole
    95% interval on the better side; a single run: whether every line of its summary that a
    sweep report would judge says past)."""
    if references and all(any(m in r for m in SINGLE_RUN_MARKS) for r in references):
        judged = [r for r in references if r.startswith(SINGLE_RUN_JUDGED)]
        return len(judged) == 2 and all(SINGLE_RUN_MARKS[0] in r for r in judged)
    return bool(references) and all(r.startswith("every variant is past") for r in references)


def run_experiment(name: str, workdir: Path, overrides: list[str], log: Path) -> ExperimentTiming:
    """Run one experiment's sweep in ``workdir`` and time it (its output goes to ``log``)."""
    before = os.getloadavg()
    start = time.perf_counter()
    command = [] if name == BARE else [f"+experiment={name}", "-m"]
    # The runs are forkserver workers the sweep never reaps: their CPU time is read from
    # /proc (benchmarks/session_cpu.py), not from this process's children's usage.
    proc, cpu = run_counting_cpu([sys.executable, "-m", "glmlab", *command, *overrides], workdir)
    wall = time.perf_counter() - start
    after = os.getloadavg()
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    launched, references, claims, last = parse_summary(proc.stdout)
    return ExperimentTiming(
        experiment=name,
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=cpu,
        load_before=before,
        load_after=after,
        launched=launched or ("1 run (a single run, no sweep)" if name == BARE else None),
        references=references,
        claims=claims,
        passed=proc.returncode == 0 and past_references(references),
        last_line=last,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS, choices=EXPERIMENTS)
    parser.add_argument("--workdir", type=Path, default=None, help="where the sweeps go")
    parser.add_argument("--override", nargs="*", default=[], help="extra overrides (smoke tests)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="glmlab-experiments-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"experiments in {workdir} ({len(os.sched_getaffinity(0))} cores usable)", flush=True)
    results: list[dict[str, Any]] = []
    for name in args.experiments:
        timing = run_experiment(name, workdir, args.override, workdir / f"{name}.log")
        print("\n".join(timing.lines()), flush=True)
        results.append(asdict(timing))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
