"""Every option of every config group composes through Hydra, and every data group loads.

A broken yaml in one group (``{path: ???}`` is not valid YAML) once shipped because no test
composed that group; this module composes all of them, so it cannot happen again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from glmlab.config.spec import parse_config
from glmlab.data.pipeline import prepare_data
from glmlab.runs.naming import register_resolvers

CONF = Path(__file__).resolve().parents[1] / "conf"
OPTIONS = sorted((f.parent.name, f.stem) for f in CONF.glob("*/*.yaml") if f.parent.name != "hydra")

# Groups whose options need a value the user must give (``???``), and a tiny one that works.
REQUIRED = {
    ("data", "jsonl"): "data.corpus_options.path={jsonl}",
    ("data", "text_files"): "data.corpus_options.pattern={txt}",
    ("data", "hf"): "data.corpus_options.path={jsonl}",
}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("corpus")
    texts = [
        f"Document {i} says that item {i} holds the value {i * 7}. It is one of many. "
        f"Sorting them gives order; counting them gives {i + 3} things in all.\n" * 3
        for i in range(60)
    ]
    jsonl = root / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    txt_dir = root / "txt"
    txt_dir.mkdir()
    for i, t in enumerate(texts):
        (txt_dir / f"{i}.txt").write_text(t, encoding="utf-8")
    return {"jsonl": str(jsonl), "txt": str(txt_dir / "*.txt")}


def _overrides(group: str, option: str, corpus: dict[str, str]) -> list[str]:
    if group == "experiment":
        own = [f"+experiment={option}"]
    elif group == "scale":  # chosen by the experiments, after their own values
        own = ["+experiment=span_shuffle_ablation", f"scale={option}"]
    elif group == "ladder":  # appended to an experiment, as the README runs it
        own = ["+experiment=span_shuffle_ablation", f"+ladder={option}"]
    else:
        own = [f"{group}={option}"]
    extra = REQUIRED.get((group, option))
    return own + ([extra.format(**corpus)] if extra else [])


def test_every_group_has_options() -> None:
    groups = {g for g, _ in OPTIONS}
    assert {"data", "model", "objective", "positional", "norm_layout", "experiment"} <= groups


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_parses(group: str, option: str, tiny_corpus: dict[str, str]) -> None:
    register_resolvers()
    with initialize_config_module(config_module="glmlab.conf", version_base=None):
        cfg = compose(config_name="config", overrides=_overrides(group, option, tiny_corpus))
    OmegaConf.resolve(cfg.data)  # no interpolation left dangling
    assert not OmegaConf.missing_keys(cfg.data)
    spec = parse_config(cfg)
    assert spec.data.seq_len > 0


@pytest.mark.parametrize("option", ["jsonl", "text_files", "stdlib_docs", "hf"])
def test_data_group_loads(option: str, tiny_corpus: dict[str, str]) -> None:
    """The data groups load a corpus end to end (the user's own file for jsonl/text_files)."""
    register_resolvers()
    overrides = [
        *_overrides("data", option, tiny_corpus),
        "data.vocab_size=512",
        "data.n_sentinels=16",
    ]
    with initialize_config_module(config_module="glmlab.conf", version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    spec = parse_config(cfg)
    data = prepare_data(
        spec.data.corpus,
        dict(spec.data.corpus_options),
        vocab_size=spec.data.vocab_size,
        n_sentinels=spec.data.n_sentinels,
        chunk_len=64,
        packing=spec.data.packing,
        min_tokens=spec.data.min_tokens,
    )
    assert len(data.train) > 0
    assert data.corpus_name == option
