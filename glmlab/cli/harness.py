"""``glmlab harness RUN_OR_SWEEP_DIR [--tasks ...]``: score finished runs on
lm-evaluation-harness tasks after the fact (docs/HARNESS.md).

Every completed run is scored on its final weights (``weights.pt``; nothing is trained,
no checkpoint or weights file is touched) and its ``harness_items.json`` gains the
tasks; a sweep's report is rebuilt so that the tasks' metrics appear with paired
intervals. The tasks, the runs and their weights are all checked before anything is
written. ``--fetch`` only loads the tasks' datasets into the cache (a login node's job
before offline runs). Settings not given on the command line come from the runs'
``harness`` config.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmlab.runs.layout import CONFIG, RunStatus, iter_run_dirs
from glmlab.runs.result import read_result

if TYPE_CHECKING:
    from glmlab.harness.run import HarnessSettings

__all__ = ["add_parser", "harness_command", "runs_to_score"]


def runs_to_score(path: str | Path) -> tuple[list[Path], bool]:
    """The completed runs under ``path`` (a run directory, or a sweep directory's runs)
    and whether ``path`` is a sweep; one line when there is none."""
    from glmlab.harness.run import HarnessError

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run or sweep directory")
    sweep = not (path / CONFIG).is_file()
    dirs = list(iter_run_dirs(path)) if sweep else [path]
    done = [
        d for d in dirs if (r := read_result(d)) is not None and r.status == RunStatus.COMPLETED
    ]
    if not done:
        what = f"{len(dirs)} run directories" if sweep else "the run"
        raise HarnessError(
            f"{path}: no completed run to score ({what}, none completed); the harness scores "
            "a completed run's final weights"
        )
    return done, sweep


def _settings(args: argparse.Namespace, run_dir: Path) -> HarnessSettings:
    """The command line's settings, the rest from the run's ``harness`` config."""
    from omegaconf import OmegaConf

    from glmlab.harness.run import HarnessSettings

    configured: dict[str, Any] = {}
    if (run_dir / CONFIG).is_file():
        node = OmegaConf.load(run_dir / CONFIG).get("harness") or {}
        configured = dict(OmegaConf.to_container(node)) if node else {}  # type: ignore[arg-type]

    def pick(key: str, value: Any) -> Any:
        return value if value is not None else configured.get(key)

    tasks = [t for item in args.tasks or [] for t in item.split(",") if t]
    return HarnessSettings(
        tasks=tuple(tasks or configured.get("tasks") or ()),
        limit=pick("limit", args.limit),
        num_fewshot=pick("num_fewshot", args.num_fewshot),
        include_path=pick("include_path", args.include_path),
        batch_size=pick("batch_size", args.batch_size) or 16,
        device=args.device,
        mask=pick("mask", args.mask) or "auto",
    )


def harness_command(args: argparse.Namespace) -> int:
    """``glmlab harness``: check everything, then score run by run, then the report."""
    from glmlab.harness.loading import weights_of
    from glmlab.harness.run import HarnessError, check_tasks, score_run

    if args.fetch:
        settings = _settings(args, Path("."))
        leaves = check_tasks(settings)
        print(f"harness: the data of {', '.join(leaves)} is in the datasets cache")
        return 0
    if args.path is None:
        raise HarnessError("give a run or sweep directory to score (or --fetch --tasks ...)")
    runs, sweep = runs_to_score(args.path)
    settings = _settings(args, runs[0])
    for run_dir in runs:
        weights_of(run_dir)  # every run's weights present before anything is written
    check_tasks(settings)
    for run_dir in runs:
        metrics = score_run(run_dir, settings, progress=True)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        print(f"{run_dir}: {shown}")
    if sweep:
        from glmlab.report import build_report

        report = build_report(args.path)
        print(f"{report}\n{report.with_suffix('.html')}")
    return 0


DESCRIPTION = """\
Score finished runs on lm-evaluation-harness tasks (docs/HARNESS.md), without retraining.

Every completed run under the path (a run directory, or a sweep's runs) is scored on its
weights.pt and its harness_items.json gains the tasks; a sweep's report is rebuilt. The
tasks, the runs and their weights are checked before anything is written. Settings not
given here come from the runs' harness config.

  glmlab harness sweeps/posenc_ablation --tasks arc_easy piqa --limit 500
  glmlab harness --fetch --tasks boolq copa     (datasets into HF_DATASETS_CACHE only)
"""


def add_parser(sub: Any) -> None:
    """The ``harness`` sub-command of the ``glmlab`` console script."""
    p = sub.add_parser(
        "harness",
        help="score finished runs on lm-evaluation-harness tasks (no retraining)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="?", help="a run directory or a sweep directory")
    p.add_argument(
        "--tasks", nargs="+", default=None, help="lm-eval task names (default: harness.tasks)"
    )
    p.add_argument("--limit", type=int, default=None, help="items per task (default: all)")
    p.add_argument("--num-fewshot", type=int, default=None, help="default: each task's own")
    p.add_argument("--include-path", default=None, help="a folder of your own task YAMLs")
    p.add_argument("--batch-size", type=int, default=None, help="samples per forward (16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--mask", default=None, choices=["auto", "MASK", "sMASK", "gMASK"])
    p.add_argument(
        "--fetch", action="store_true", help="only load the tasks' datasets into the cache"
    )
    p.set_defaults(func=harness_command)
