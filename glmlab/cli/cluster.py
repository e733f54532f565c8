"""The ``glmlab submit``, ``status`` and ``collect`` commands (wired up in glmlab/cli/main.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from glmlab.cluster.launcher import LAUNCHER
from glmlab.cluster.validate import SWEEPER


def submit(overrides: Sequence[str]) -> int:
    """Run ``python -m glmlab -m OVERRIDES`` with the submit-and-return Slurm launcher."""
    overrides = [o for o in overrides if o not in ("-m", "--multirun")]
    chosen = [o for o in overrides if o.split("=")[0].lstrip("+") == "hydra/launcher"]
    if any(o.split("=", 1)[1] != LAUNCHER for o in chosen):
        print(
            f"glmlab: submit uses hydra/launcher={LAUNCHER}; drop {chosen[0]} "
            "(its settings, hydra.launcher.*, are submitit_slurm's)",
            file=sys.stderr,
        )
        return 2
    if not chosen:
        overrides.insert(0, f"hydra/launcher={LAUNCHER}")
    # A ladder file (+ladder=...) picks its own sweeper (glmlab_ladder, as fast to check).
    if not any(o.split("=")[0].lstrip("+") in ("hydra/sweeper", "ladder") for o in overrides):
        overrides.insert(0, f"hydra/sweeper={SWEEPER}")  # checks a 500-run sweep in seconds
    from glmlab.cluster.slurm import slurm_config
    from glmlab.cluster.submit import NO_CLUSTER

    if not slurm_config():
        print(f"glmlab: {NO_CLUSTER}", file=sys.stderr)
        return 2
    from glmlab.cli.app import main
    from glmlab.config.scale import resolve_scale

    overrides, scale = resolve_scale(overrides)
    if scale is not None and not scale.given:  # chosen here, not on the nodes that train
        print(f"glmlab: {scale.line()} on this machine", file=sys.stderr)
    argv = sys.argv
    sys.argv = ["glmlab", "--multirun", *overrides]
    try:
        main()  # Hydra's entry point: parses sys.argv; exits non-zero on an error
    finally:
        sys.argv = argv
    return 0


def status(sweep_dir: str, *, watch: bool = False, interval: float = 10.0) -> int:
    """Print one line per run of the sweep (refreshing with ``watch``)."""
    from glmlab.cluster.status import render_status, sweep_runs
    from glmlab.cluster.status import watch as watch_status

    if watch:
        watch_status(sweep_dir, interval)
    else:
        print(render_status(sweep_runs(sweep_dir)))
    return 0


def collect(sweep_dir: str, *, baseline: str | None = None, metric: list[str] | None = None) -> int:
    """Write the report of what has finished, list what has not; the sweep's exit status."""
    from glmlab.cli.collect import collect as collect_sweep
    from glmlab.cluster.status import render_status

    done = collect_sweep(sweep_dir, baseline=baseline, metric=metric)
    if done.report is None:
        print(f"glmlab: no report yet: no run of {sweep_dir} has started")
    else:
        print(f"{done.report}\n{done.report.with_suffix('.html')}")
    if done.outstanding:
        print(f"\nnot finished ({len(done.outstanding)} of {len(done.runs)}):")
        print(render_status(done.outstanding))
    return done.exit_status
