"""Side-by-side comparison of sweeps: ``glmlab compare DIR1 DIR2 [...] --out OUT``.

For the variants and metrics the sweeps share (e.g. the CPU and the GPU sweep of one
experiment, or one sweep before and after a plugin change) it writes ``compare.md`` and a
self-contained ``compare.html``: each sweep's mean with the 95% interval its report shows,
its verdict against its own baseline (the report's: the same test, the same family), and
the change from the first sweep with the report's test (:func:`glmlab.report.stats.compare_arms`
over seeds: the sweeps need not share items). A variant whose verdict against its
baseline differs between sweeps is marked, as confounded when the sweeps also differ in an
architecture setting (:data:`glmlab.report.header.ARCHITECTURE`: positional scheme,
vocabulary, objective, ...). A sweep is never compared with itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from glmlab.io import write_text_atomic
from glmlab.report.assess import NONE, arm_of, tests_of
from glmlab.report.header import architecture_keys, shared_settings
from glmlab.report.html import markdown_to_html
from glmlab.report.load import Sweep, Variant, differing_config, load_sweep
from glmlab.report.markdown import fmt, md_cell
from glmlab.report.metrics import metric_info
from glmlab.report.plots import plot_compare_curves
from glmlab.report.rates import RateDiff
from glmlab.report.stats import Arm, compare_arms
from glmlab.report.sweep_verdicts import assessment
from glmlab.runs.layout import COMPARE_CURVES, COMPARE_HTML, COMPARE_MD, RunStatus

__all__ = [
    "CONFOUNDED",
    "DIFFERENT_VERDICT",
    "compare_sweeps",
    "default_compare_dir",
    "render_comparison",
]

DIFFERENT_VERDICT = "⚠ verdict differs"
CONFOUNDED = "confounded"


def sweep_names(sweeps: Sequence[Sweep]) -> list[str]:
    """Short unique names: the directory name, with parent folders added while two clash."""
    depth = 1
    while True:
        names = ["/".join(s.dir.resolve().parts[-depth:]) for s in sweeps]
        if len(set(names)) == len(names) or depth > 8:
            return names
        depth += 1


def _verdict_key(sweep: Sweep, variant: Variant, metric: str) -> str:
    """The verdict's category against the baseline (``=`` for the baseline itself)."""
    if sweep.baseline is None or variant.label == sweep.baseline.label:
        return "="
    found = assessment(sweep).verdicts.get((variant.label, metric))
    return found.kind if found is not None else "="


def _summary(sweep: Sweep, label: str, metric: str, digits: int) -> str:
    iv = tests_of(sweep, metric).intervals.get(label)
    if iv is None:
        return "–"
    n = len(next(v for v in sweep.variants if v.label == label).values(metric))
    ci = f" [{fmt(iv.low, digits)}, {fmt(iv.high, digits)}]" if iv.low is not None else ""
    return f"{fmt(iv.estimate, digits)}{ci} (n={n})"


def _vs_baseline(sweep: Sweep, label: str, metric: str, digits: int) -> str:
    if sweep.baseline is None:
        return "–"
    if label == sweep.baseline.label:
        return "baseline"
    found = assessment(sweep).verdicts.get((label, metric))
    if found is not None:
        return md_cell(found.text)
    tests = tests_of(sweep, metric)
    if tests.method == NONE:
        return md_cell(tests.reason)
    d = tests.diffs.get(label)
    if d is None:
        return "–"
    if isinstance(d, RateDiff):  # a rate over runs (diverged, failed): its counts
        return f"{d.describe(digits)}, p = {d.p:.3g} (not a verdict metric)"
    return f"{d.diff:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}] (not tested)"


def _change(variant: Variant, first: Variant, metric: str, digits: int) -> str:
    """This sweep's variant minus the first sweep's, over seeds (paired when both ran the
    same seeds), with its 95% interval and p: one test per cell, not adjusted."""
    now, then = arm_of(variant, metric, items=False), arm_of(first, metric, items=False)
    d = compare_arms(Arm(now.values, now.seeds), Arm(then.values, then.seeds))
    if d is None:
        return "–"
    text = f"{d.diff:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}], p = {d.p:.3g}"
    return f"**{text}**" if d.p < 0.05 else text


def _differs(differs: bool, confounds: list[str]) -> str:
    """The last cell of a row: the verdict differs between the sweeps, and whether
    architecture settings that differ too confound it."""
    if not differs:
        return ""
    if not confounds:
        return DIFFERENT_VERDICT
    shown = ", ".join(confounds[:3]) + (", ..." if len(confounds) > 3 else "")
    return f"{DIFFERENT_VERDICT} ({CONFOUNDED}: {shown} differ too)"


def render_comparison(sweeps: Sequence[Sweep], *, curves: bool = False) -> str:
    """The comparison as markdown (see the module docstring)."""
    names = sweep_names(sweeps)
    first = names[0]
    lines = [
        f"# Comparison: {' vs '.join(names)}",
        "",
        "| sweep | directory | runs | completed | diverged | baseline |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in zip(names, sweeps, strict=True):
        done = sum(r.status == RunStatus.COMPLETED for r in s.runs)
        div = sum(r.status == RunStatus.DIVERGED for r in s.runs)
        base = md_cell(s.baseline.label) if s.baseline else "–"
        lines.append(f"| {name} | `{s.dir.resolve()}` | {len(s.runs)} | {done} | {div} | {base} |")
    lines += [
        "",
        "Cells: mean with the 95% interval its sweep's report shows (n completed runs). "
        "“vs baseline”: the variant's verdict against its own sweep's baseline, as that "
        "report states it (same test, same family, adjusted p); “change”: this sweep minus "
        f"{first} with its 95% interval and p, over seeds (paired by seed when both sweeps "
        "ran the same seeds; the sweeps need not share items), one test per cell, not "
        "adjusted: **bold** = p < 0.05. "
        f"{DIFFERENT_VERDICT}: the variant's verdict category (better, worse, equivalent, "
        "inconclusive, ...) differs between the sweeps.",
        "",
    ]
    for name, s in zip(names, sweeps, strict=True):
        if settings_line := shared_settings(s):
            lines.append(f"- {name}: {settings_line}")
    lines.append("")

    by_sweep = {name: s.runs for name, s in zip(names, sweeps, strict=True)}
    swept = {o.split("=", 1)[0] for s in sweeps for v in s.variants for o in v.label.split(", ")}
    settings = {k: row for k, row in differing_config(by_sweep).items() if k not in swept}
    lines += ["## Settings that differ between the sweeps", ""]
    if settings:
        lines += ["| config key | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for key, row in settings.items():
            lines.append(f"| {key} | " + " | ".join(md_cell(row[n]) for n in names) + " |")
    else:
        lines.append("None: the sweeps ran the same settings.")
    confounds = architecture_keys(list(settings))
    if confounds:
        lines += [
            "",
            f"⚠ The sweeps differ in what they train, not only in its size or schedule "
            f"({', '.join(confounds)}): a verdict that differs between them may come from "
            f"these settings; such lines are marked “{CONFOUNDED}”.",
        ]

    labels = [v.label for v in sweeps[0].variants]
    shared = [lab for lab in labels if all(lab in {v.label for v in s.variants} for s in sweeps)]
    metrics = [m for m in sweeps[0].metrics() if all(m in s.metrics() for s in sweeps[1:])]
    lines += ["", "## Metrics", ""]
    if not shared or not metrics:
        lines.append(
            "Nothing to put side by side: the sweeps share "
            + ("no variant" if not shared else "no metric")
            + " (see “Variants not in every sweep”). Compare sweeps of the same experiment, "
            "e.g. its CPU and GPU runs."
        )
        metrics = []
    if curves:
        lines += [
            "Loss curves: colour = variant, line style = sweep (mean over seeds).",
            "",
            f"![loss curves]({COMPARE_CURVES})",
            "",
        ]
    for metric in metrics:
        info = metric_info(metric)
        header = ["variant"]
        for i, name in enumerate(names):
            header += [name, f"{name} vs baseline"] + ([f"change {name} − {first}"] if i else [])
        lines += [f"### {info.label}", "", "| " + " | ".join(header) + " | |"]
        lines.append("|---" * (len(header) + 1) + "|")
        for label in shared:
            variants = [next(v for v in s.variants if v.label == label) for s in sweeps]
            row = [md_cell(label)]
            for i, (s, v) in enumerate(zip(sweeps, variants, strict=True)):
                row += [
                    _summary(s, label, metric, info.digits),
                    _vs_baseline(s, label, metric, info.digits),
                ]
                if i:
                    row.append(_change(v, variants[0], metric, info.digits))
            keys = {_verdict_key(s, v, metric) for s, v in zip(sweeps, variants, strict=True)}
            row.append(_differs(len(keys) > 1, confounds))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")

    only = [
        f"- {md_cell(v.label)}: only in {', '.join(n for n, s in zip(names, sweeps, strict=True) if v.label in {x.label for x in s.variants})}"
        for s in sweeps
        for v in s.variants
        if v.label not in shared
    ]
    lines += ["## Variants not in every sweep", "", *(list(dict.fromkeys(only)) or ["None."])]
    return "\n".join(lines) + "\n"


def default_compare_dir(sweep_dirs: Sequence[str | Path]) -> Path:
    """``sweeps/compare/<a>_vs_<b>...``: inside the ignored sweeps/ folder."""
    names = [Path(d).resolve().name for d in sweep_dirs]
    return Path("sweeps") / "compare" / "_vs_".join(names)


def compare_sweeps(sweep_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write ``compare.md`` and ``compare.html`` into ``out``; return the .md path."""
    if len(sweep_dirs) < 2:
        raise ValueError("compare needs at least two sweep directories")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for compare.md and compare.html")
    seen: dict[Path, str] = {}
    for d in sweep_dirs:
        if (key := Path(d).resolve()) in seen:
            raise ValueError(
                f"{d} and {seen[key]} are the same sweep directory: compare puts different "
                "sweeps side by side (one sweep's report: glmlab report " + str(d) + ")"
            )
        seen[key] = str(d)
    sweeps = [load_sweep(d) for d in sweep_dirs]
    out.mkdir(parents=True, exist_ok=True)
    curves = plot_compare_curves(sweeps, sweep_names(sweeps), out / COMPARE_CURVES)
    md = render_comparison(sweeps, curves=curves)
    path = write_text_atomic(out / COMPARE_MD, md)
    title = f"Comparison: {' vs '.join(sweep_names(sweeps))}"
    write_text_atomic(out / COMPARE_HTML, markdown_to_html(md, base_dir=out, title=title))
    return path
