"""What ``python -m glmlab`` answers before Hydra sees the command line: ``--version``,
``--help`` (the app, ``-m``, the experiments and the ``glmlab`` tools), ``-m`` anywhere
among the overrides, and the scale made explicit (:func:`glmlab.config.scale.resolve_scale`)."""

from __future__ import annotations

import importlib.resources
import sys
from collections.abc import Sequence

from glmlab.cli.version import version_text
from glmlab.config.scale import ScaleChoice, resolve_scale

MULTIRUN_FLAGS = ("-m", "--multirun")

# The scale this process's command line runs at (prepare_argv), for the run's summary.
_scale: list[ScaleChoice] = []


def experiments() -> dict[str, str]:
    """``{experiment: what it sweeps}`` from glmlab's conf/experiment files."""
    from omegaconf import OmegaConf

    out = {}
    folder = importlib.resources.files("glmlab.conf").joinpath("experiment")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        cfg = OmegaConf.create(entry.read_text(encoding="utf-8"))
        params = OmegaConf.select(cfg, "hydra.sweeper.params", default={}) or {}
        swept = [f"{k}={v}" for k, v in params.items() if k != "seed"]
        out[entry.name.removesuffix(".yaml")] = " ".join(swept)
    return out


def tool_commands() -> list[tuple[str, str]]:
    """``(command, what it does)`` for every command of the ``glmlab`` console script, read
    from its parser (a new command is listed with no edit here)."""
    from glmlab.cli.main import commands

    return [(name, about) for name, _, about in commands()]


def app_help() -> str:
    """The text of ``python -m glmlab --help``."""
    listing = "\n".join(f"  {name:<26}{about}" for name, about in experiments().items())
    tools = "\n".join(f"    glmlab {name:<11}{about}" for name, about in tool_commands())
    return f"""\
python -m glmlab: train GLM variants and sweep ablations. {version_text()}

  python -m glmlab [OVERRIDES...]                      train one run
  python -m glmlab +experiment=NAME -m [OVERRIDES...]  sweep an experiment, write its report
  python -m glmlab -m KEY=A,B seed=0,1,2 name=NAME     sweep your own grid

OVERRIDES are Hydra's key=value pairs: pick plugins by registry name (positional=rope,
norm_layout=deepnorm, objective=glm130b) and set any field (train.max_steps=1000).
-m (--multirun) runs every combination of comma-separated values into
sweeps/NAME/<overrides>/, side by side: as many runs at once as the cores allow (one torch
thread each; one at a time on a GPU; hydra.launcher.n_jobs=N to choose), then writes
sweeps/NAME/report.md and report.html; it may stand anywhere on the line. A single run
goes to runs/NAME/<overrides>/; rerunning the same command skips finished runs and
resumes unfinished ones.

scale=auto (the default without an experiment) picks the size for the device the run
trains on: scale=cpu (a tiny model that learns in minutes on 2 cores) without a CUDA
device, scale=gpu (GLM-Base, runs/NAME_gpu/) with one; name either to choose.

Experiments (+experiment=NAME: its variants x 3 seeds, first value the baseline; CPU by
default, scale=gpu for one GPU):
{listing}

More:
  python -m glmlab --cfg job        print the composed config
  python -m glmlab --hydra-help     Hydra's own options (launchers, sweepers, logging)
  python -m glmlab --version        glmlab's and torch's versions
  harness.tasks=[copa,piqa]         lm-evaluation-harness tasks scored at the end of each run
                                    (harness=glm_paper: SuperGLUE + LAMBADA; docs/HARNESS.md)
  glmlab --help                     the tools, each with its options:
{tools}
"""


def prepare_argv(argv: Sequence[str]) -> list[str] | None:
    """``argv`` with ``-m``/``--multirun`` moved to the front, so that overrides may come
    on both sides of it, and the scale made explicit (``scale=auto``, the default without
    an experiment: cpu or gpu as the device; :func:`scale_choice` says which and why);
    None after printing the version or the help (nothing to run)."""
    args = list(argv[1:])
    if any(a in ("--version", "-V") for a in args):
        print(version_text())
        return None
    if any(a in ("--help", "-h") for a in args):
        print(app_help())
        return None
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    rest, choice = resolve_scale([a for a in args if a not in MULTIRUN_FLAGS])
    _scale[:] = [choice] if choice is not None else []
    return [argv[0], *flags[:1], *rest]


def scale_choice() -> ScaleChoice | None:
    """The scale :func:`prepare_argv` chose for this process's command line, if it chose one
    (an experiment's own default names none)."""
    return _scale[0] if _scale else None


def main_with_prepared_argv() -> None:
    """The ``python -m glmlab`` entry point: :func:`prepare_argv`, then the Hydra app."""
    argv = prepare_argv(sys.argv)
    if argv is None:
        return
    sys.argv = argv
    from glmlab.cli.app import main, remember_scale
    from glmlab.config.errors import one_line_config_errors

    remember_scale(scale_choice())
    try:
        with one_line_config_errors():
            main()
    except OSError as exc:  # a full disk where Hydra writes (a sweep's multirun.yaml): one line
        line = _disk_full_line(exc, multirun=any(a in MULTIRUN_FLAGS for a in argv))
        if line is None:
            raise
        raise SystemExit(f"glmlab: {line}") from None


def _disk_full_line(exc: OSError, *, multirun: bool) -> str | None:
    from glmlab.io import disk_full_error, is_disk_full

    if not is_disk_full(exc):
        return None
    if exc.filename:
        return str(disk_full_error(exc.filename, exc, "free some space and rerun"))
    what = "the sweep's record (multirun.yaml, which Hydra writes first)" if multirun else "a file"
    return f"no space left on device while writing {what}: free some space and rerun"
