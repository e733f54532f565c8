"""The ``glmlab`` console script: tools around runs and sweeps, one sub-command each; its
``--help`` lists each command's usage as argparse writes it (:func:`commands`)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from hydra.errors import HydraException

from glmlab.cli.harness import add_parser as add_harness_parser
from glmlab.cli.version import version_text
from glmlab.plugin.hookspecs import API_VERSION, KINDS
from glmlab.plugin.registry import PluginError, get_registry

INTRO = "Tools around glmlab runs and sweeps (training itself is: python -m glmlab --help)."


def _plugins(args: argparse.Namespace) -> int:
    from glmlab.cli.presets import plugin_presets

    registry = get_registry()
    clashing = registry.clashes()
    presets = plugin_presets()
    entries = [
        {
            **e.listing_row(),
            "hook": KINDS[e.kind],
            "presets": presets.get((e.kind, e.name), []),
            **({"clash": "yes"} if (e.kind, e.name) in clashing else {}),
        }
        for e in registry.entries()
    ]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    print(f"glmlab hook API version {API_VERSION}")
    cols = ["kind", "name", "distribution", "version", "module", "hook", "presets"]
    rows = [{**e, "presets": ", ".join(e["presets"]) or "-"} for e in entries]
    widths = [max(len(c), *(len(e[c]) for e in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for e in rows:
        print("  ".join(e[c].ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    print(
        "presets: the options of conf/ that select the plugin (python -m glmlab GROUP=OPTION); "
        "any plugin is also chosen by name, e.g. positional.name=NAME"
    )
    for (kind, name), claimants in clashing.items():  # only runs that use the name fail
        who = ", ".join(f"'{e.distribution}'" for e in claimants)
        print(f"CLASH: {kind} '{name}' is registered by {who}: runs that use it fail")
    return 0


def _report(args: argparse.Namespace) -> int:
    from glmlab.report import build_report

    path = build_report(args.sweep_dir, baseline=args.baseline, metric=args.metric, strict=True)
    print(f"{path}\n{path.with_suffix('.html')}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from glmlab.report import compare_sweeps, default_compare_dir

    out = args.out or default_compare_dir(args.sweep_dirs)
    path = compare_sweeps(args.sweep_dirs, out)
    print(f"{path}\n{path.with_suffix('.html')}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from glmlab.report.ladder_export import render_ladder_table
    from glmlab.report.table import MissingExtraError, render

    try:
        if args.table == "ladder":
            text = render_ladder_table(args.sweep_dir, args.format, args.out)
        else:
            text = render(args.sweep_dir, args.format, args.out)
    except MissingExtraError as exc:
        print(f"glmlab: {exc}", file=sys.stderr)
        return 2
    print(text if text is not None else args.out, end="" if text is not None else "\n")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from glmlab.cli.inspect import (
        compose_config,
        inspect_sample,
        render_mask_art,
        render_table,
        save_mask_png,
    )

    cfg = compose_config(args.overrides)
    ins = inspect_sample(cfg, batch=args.batch, row=args.row, index=args.sample)
    s = ins.sample
    print(
        f"sample {args.sample} of {ins.samples_in_row} in row {args.row} of training batch "
        f"{args.batch}: {len(s)} tokens, sep = {s.sep}, "
        f"{int(s.loss_mask.sum())} loss positions\n"
    )
    print(render_table(ins))
    print()
    print(render_mask_art(ins.mask, s.sep))
    title = " ".join(args.overrides) or "default config"
    if save_mask_png(ins, args.png, title):
        print(f"\nattention mask picture: {args.png}")
    else:
        print("\n(no PNG: matplotlib is not installed; pip install 'glmlab[report]')")
    return 0


def _infill(args: argparse.Namespace) -> int:
    import warnings

    from glmlab.cli.infill import Infiller

    warnings.formatwarning = lambda message, *_args, **_kw: f"glmlab: warning: {message}\n"

    result = Infiller(args.checkpoint, device=args.device).fill(
        args.text,
        top_k=args.top_k,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    from glmlab.cli.text import printable

    print(printable(result.text))  # one line: control characters escaped, as inspect shows them
    for i, fill in enumerate(result.fills):
        print(f"  blank {i}: {fill!r}", file=sys.stderr)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from glmlab.cli.cluster import submit

    return submit(args.overrides)


def _status(args: argparse.Namespace) -> int:
    from glmlab.cli.cluster import status

    return status(args.sweep_dir, watch=args.watch, interval=args.interval)


def _collect(args: argparse.Namespace) -> int:
    from glmlab.cli.cluster import collect

    return collect(args.sweep_dir, baseline=args.baseline, metric=args.metric)


def hydra_error_line(exc: HydraException) -> str:
    """A composition error in one line (:func:`glmlab.config.errors.composition_error_line`):
    a wrong type names the key and what it accepts, a missing option the group's options."""
    from glmlab.config.errors import composition_error_line

    return composition_error_line(exc)


def build_parser() -> argparse.ArgumentParser:
    """The ``glmlab`` command line: one sub-command per tool."""
    parser = argparse.ArgumentParser(
        prog="glmlab", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="glmlab's and torch's versions"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("plugins", help="every registered plugin, and the conf/ presets that use it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plugins)
    p = sub.add_parser("report", help="rebuild a sweep's report (report.md, report.html, curves)")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument(
        "--baseline",
        default=None,
        help="the baseline variant's overrides, e.g. objective.shuffle_spans=true",
    )
    p.add_argument(
        "--metric", nargs="+", default=None, help="verdict metric(s), default report.metric"
    )
    p.set_defaults(func=_report)
    p = sub.add_parser("compare", help="side-by-side report of two or more sweeps")
    p.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR")
    p.add_argument(
        "--out",
        default=None,
        help="folder for compare.md and compare.html (default sweeps/compare/A_vs_B)",
    )
    p.set_defaults(func=_compare)
    p = sub.add_parser(
        "results",
        help="one row per run (latex: mean ± CI per variant); --table ladder: a ladder's "
        "per-rung differences and its prediction check",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument(
        "--format", default="csv", choices=["csv", "parquet", "json", "markdown", "latex"]
    )
    p.add_argument("--out", default=None, help="write to FILE instead of standard output")
    p.add_argument(
        "--table",
        default="runs",
        choices=["runs", "ladder"],
        help="runs: a row per run; ladder: a ladder's row per metric, variant and rung",
    )
    p.set_defaults(func=_results)
    p = sub.add_parser("inspect", help="one training sample of a config: table + attention mask")
    p.add_argument(
        "overrides", nargs="*", metavar="OVERRIDES", help="Hydra overrides, as for python -m glmlab"
    )
    p.add_argument("--batch", type=int, default=0, help="training batch index")
    p.add_argument("--row", type=int, default=0, help="row of the batch")
    p.add_argument("--sample", type=int, default=0, help="sample of the row (rows are packed)")
    p.add_argument(
        "--png", default="runs/inspect/mask.png", help="where to draw the mask (folders made)"
    )
    p.set_defaults(func=_inspect)
    p = sub.add_parser("infill", help="fill the [MASK] blanks of a text with a trained GLM")
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_DIR",
        help="a run directory, or its weights.pt / checkpoint.pt",
    )
    p.add_argument("--text", required=True, help='e.g. "Return the [MASK] of the list."')
    p.add_argument("--top-k", type=int, default=1, help="1: greedy; k > 1: sample the top k")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=32, help="per blank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.set_defaults(func=_infill)
    add_harness_parser(sub)
    p = sub.add_parser(
        "submit",
        help="submit a sweep's jobs to Slurm and return (no waiting)",
        usage="glmlab submit OVERRIDES...",  # argparse writes a remainder as "..."
    )
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        metavar="OVERRIDES",
        help="as for python -m glmlab -m",
    )
    p.set_defaults(func=_submit)
    p = sub.add_parser("status", help="every run's state: pending, running, completed, ...")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument("--watch", action="store_true", help="refresh until every run has ended")
    p.add_argument("--interval", type=float, default=10.0, help="--watch: seconds between")
    p.set_defaults(func=_status)
    p = sub.add_parser(
        "collect", help="report what has finished, list what has not; exit 0 when all did"
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument("--baseline", default=None, help="as for glmlab report")
    p.add_argument("--metric", nargs="+", default=None, help="as for glmlab report")
    p.set_defaults(func=_collect)
    parser.description = (
        INTRO
        + "\n\n"
        + "\n".join(
            textwrap.fill(usage, 96, subsequent_indent="        ") + f"\n    {about}"
            for _, usage, about in commands(parser)
        )
    )
    return parser


def commands(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, str, str]]:
    """``(name, usage, what it does)`` for every sub-command of the ``glmlab`` parser, the
    usage as argparse writes it (optional flags in brackets)."""
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    about = {a.dest: a.help or "" for a in sub._choices_actions}
    out = []
    for name, command in sub.choices.items():
        usage = command.format_usage().removeprefix("usage: ").replace(" [-h]", "")
        out.append((name, " ".join(usage.split()), about.get(name, "")))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HydraException as exc:  # a bad override: one line naming the valid choices
        print(f"glmlab: {hydra_error_line(exc)}", file=sys.stderr)
        return 2
    except (PluginError, ValueError, OSError) as exc:  # OSError: missing, unwritable, disk full
        print(f"glmlab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glmlab: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
