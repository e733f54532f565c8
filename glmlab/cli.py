"""The ``glmlab`` console script: tools around runs (training is ``python -m glmlab``).

glmlab plugins [--json]        list every registered plugin
glmlab report SWEEP_DIR        rebuild a sweep's report.md
"""

from __future__ import annotations

import argparse
import json
import sys

from glmlab.registry import PluginError, get_registry


def _plugins(args: argparse.Namespace) -> int:
    entries = [e.describe() for e in get_registry().entries()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    cols = ["kind", "name", "distribution", "version", "module"]
    widths = [max(len(c), *(len(e[c]) for e in entries)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for e in entries:
        print("  ".join(e[c].ljust(w) for c, w in zip(cols, widths, strict=True)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from glmlab.sweep_report import build_report

    print(build_report(args.sweep_dir, baseline=args.baseline))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="glmlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list registered plugins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plugins)
    p = sub.add_parser("report", help="rebuild the report of a sweep directory")
    p.add_argument("sweep_dir")
    p.add_argument(
        "--baseline",
        default=None,
        help="the baseline variant's overrides, e.g. objective.shuffle_spans=true",
    )
    p.set_defaults(func=_report)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (PluginError, FileNotFoundError) as exc:
        print(f"glmlab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
