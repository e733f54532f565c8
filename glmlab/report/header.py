"""What ran, for the top of every report (sweep, ladder, compare) and the LaTeX caption:
steps and batch, the model's shape, every plugin choice (one per plugin group of the config
schema, so a new plugin kind is named with no edit here) with its options, the objective
and its span samplers, the corpus, the vocabulary and its tokenizer, and the versions.

A setting that is not the same in every run is named as varying (the report's "What
differs" table has its values). :data:`ARCHITECTURE` lists the settings that change what
is trained beyond its size: two sweeps that differ in one of them compare more than a
scale (``glmlab compare`` marks their differing verdicts as confounded)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from glmlab.config.schema import PLUGIN_GROUPS
from glmlab.report.load import Run, Sweep
from glmlab.runs.result import RunResult

__all__ = ["ARCHITECTURE", "architecture_keys", "setting_parts", "settings_text", "shared_settings"]

# Config keys (or key prefixes, ending in ".") that change the model or its task rather than
# its size or schedule: the plugin groups, the objective, the feed-forward type, tied
# embeddings and the vocabulary.
ARCHITECTURE = (
    *(f"{group}." for group in PLUGIN_GROUPS if group != "attention"),
    "objective.",
    "model.ffn",
    "model.tie_embeddings",
    "data.vocab_size",
    "data.tokenizer_file",
    "data.n_sentinels",
)


def architecture_keys(keys: Sequence[str]) -> list[str]:
    """Those of ``keys`` that are :data:`ARCHITECTURE` settings."""
    return [
        k
        for k in keys
        if any(k == a or (a.endswith(".") and k.startswith(a)) for a in ARCHITECTURE)
    ]


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _provenance(dotted: str) -> Callable[[RunResult], Any]:
    """A reader of one value of a result's provenance record (``torch.version``)."""
    return lambda result: _dig(result.provenance, dotted)


def _value(text: Any) -> str:
    """A config value as the command line spells it (flattened values may be JSON text)."""
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except ValueError:
            return text
    if isinstance(text, bool) or text is None:
        return json.dumps(text)
    if isinstance(text, float) and text.is_integer():
        return str(int(text))
    return str(text) if not isinstance(text, dict | list) else json.dumps(text)


class _Runs:
    """The configs and results of some runs, asked one setting at a time."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = [r for r in runs if r.config]
        self.varying: list[str] = []

    def same(self, key: str) -> Any:
        """The one value of config ``key`` in every run, else None."""
        return self._one(json.dumps(r.config.get(key)) for r in self.runs)

    def recorded(self, read: Callable[[RunResult], Any]) -> Any:
        """The one value ``read`` finds in every run's result record, else None."""
        return self._one(json.dumps(read(r.result)) for r in self.runs)

    @staticmethod
    def _one(values: Any) -> Any:
        distinct = set(values)
        return json.loads(distinct.pop()) if len(distinct) == 1 else None

    def group(self, prefix: str) -> dict[str, str]:
        """``{subkey: value}`` of the keys under ``prefix`` on which the runs agree; the
        others are counted as varying (by their full key)."""
        keys = sorted({k for r in self.runs for k in r.config if k.startswith(prefix)})
        out = {}
        for key in keys:
            values = {json.dumps(r.config.get(key)) for r in self.runs}
            if len(values) > 1:
                self.varying.append(key)
            else:
                out[key[len(prefix) :]] = _value(json.loads(values.pop()))
        return out


def _plugin(runs: _Runs, group: str) -> str | None:
    """``positional rope``, ``norm_layout deepnorm (constants=glm130b)``, ``attention auto
    (ran sdpa)``."""
    node = runs.group(f"{group}.")
    if "name" not in node:
        return None
    options = ", ".join(f"{k}={v}" for k, v in node.items() if k != "name")
    text = f"{group} {node['name']}" + (f" ({options})" if options else "")
    if group == "attention":
        ran = sorted({str(r.result.attention) for r in runs.runs if r.result.attention})
        if ran and ran != [node["name"]]:
            text += f" (ran {', '.join(ran)})"
    return text


def _objective(runs: _Runs) -> str | None:
    """``objective glm: samplers token (weight 1, mask_ratio 0.15, ...), shuffle_spans true``."""
    node = runs.group("objective.")
    if "kind" not in node:
        return None
    samplers: dict[str, list[str]] = {}
    rest = []
    for key, value in node.items():
        if key == "samplers":  # none (an empty mapping)
            continue
        if key.startswith("samplers."):
            _, name, option = key.split(".", 2)
            samplers.setdefault(name, []).append(f"{option} {value}" if option else value)
        elif key != "kind" and not (node["kind"] != "mlm" and key == "mlm_ratio"):
            rest.append(f"{key} {value}")
    if node["kind"] != "glm":
        rest = [r for r in rest if not r.startswith(("shuffle_spans", "sentinels", "task_"))]
    named = "; ".join(f"{name} ({', '.join(options)})" for name, options in samplers.items())
    parts = ([f"samplers {named}"] if samplers else []) + rest
    return f"objective {node['kind']}" + (f": {', '.join(parts)}" if parts else "")


def _vocabulary(runs: _Runs) -> str | None:
    """``vocab 1024 (BPE trained on the corpus, 100 sentinels)`` or the tokenizer file."""
    vocab, file = runs.same("data.vocab_size"), runs.same("data.tokenizer_file")
    sentinels = runs.same("data.n_sentinels")
    for key, value in (("data.vocab_size", vocab), ("data.tokenizer_file", file)):
        if value is None and len({json.dumps(r.config.get(key)) for r in runs.runs}) > 1:
            runs.varying.append(key)
    if vocab is None and file is None:
        return None
    tokenizer = f"tokenizer_file {file}" if file else "BPE trained on the corpus"
    extra = f", {sentinels} sentinels" if sentinels is not None else ""
    return (f"vocab {vocab} " if vocab is not None and not file else "") + f"({tokenizer}{extra})"


def setting_parts(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
    """(the settings every run shares, as phrases; the setting groups that vary)."""
    r = _Runs(runs)
    if not r.runs:
        return [], []
    parts = []
    steps, batch, seq = (
        r.same("train.max_steps"),
        r.same("train.batch_size"),
        r.same("data.seq_len"),
    )
    if steps is not None:
        parts.append(f"{steps} steps" + (f" × {batch} × {seq} tokens" if batch and seq else ""))
    layers, dim, heads = r.same("model.n_layers"), r.same("model.dim"), r.same("model.n_heads")
    params = r.recorded(lambda result: result.n_params)
    if layers and dim:
        parts.append(
            f"model {layers} × {dim}"
            + (f", {heads} heads" if heads else "")
            + (f" ({params / 1e6:.2f}M parameters)" if params else "")
        )
    else:
        r.varying += [
            k for k in ("model.n_layers", "model.dim") if any(k in x.config for x in r.runs)
        ]
    parts += [p for g in PLUGIN_GROUPS if (p := _plugin(r, g))]
    if objective := _objective(r):
        parts.append(objective)
    corpus, python = r.same("data.corpus"), r.recorded(_provenance("python"))
    if corpus:
        parts.append(f"corpus {corpus}" + (f" (Python {python})" if python else ""))
    if vocabulary := _vocabulary(r):
        parts.append(vocabulary)
    for pkg in ("glmlab", "torch"):
        if version := r.recorded(_provenance(f"{pkg}.version")):
            parts.append(f"{pkg} {version}")
    return parts, _collapsed(list(dict.fromkeys(r.varying)))


def _collapsed(keys: list[str]) -> list[str]:
    """Varying keys, those of one group as one entry when several vary (``objective: 6
    keys``: an ``objective=`` choice sets them all)."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key.split(".")[0], []).append(key)
    return [ks[0] if len(ks) == 1 else f"{g} ({len(ks)} keys)" for g, ks in groups.items()]


def settings_text(runs: Sequence[Run], *, varying_note: str = "") -> str:
    """``800 steps × 16 × 128 tokens, model 2 × 64, ..., positional rope, ...``, then the
    settings that vary (``varying_note`` follows them, e.g. where their values are)."""
    parts, varying = setting_parts(runs)
    text = ", ".join(parts)
    if varying:
        text += f"; varies between runs: {', '.join(varying)}{varying_note}"
    return text


def shared_settings(sweep: Sweep) -> str:
    """The report's line on what ran: every setting the runs share (plugins, objective,
    vocabulary included) and those that vary between variants."""
    text = settings_text(sweep.runs, varying_note=" (see “What differs between variants”)")
    return f"Settings: {text}." if text else ""
