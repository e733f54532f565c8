"""Small local lm-evaluation-harness tasks for the tests: lm-eval's YAML task format over
jsonl files, written into a folder given as an include path (no dataset hub)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

# Multiple choice: a context, its choices, the index of the right one.
MC = [
    ("Return the", ["value of the list.", "green sky above.", "loud music now."], 0),
    ("The function returns", ["a new list.", "the weather.", "a cat."], 0),
    ("Raise an", ["exception if the file is missing.", "umbrella in the rain."], 0),
    ("If the argument is", ["omitted, None is used.", "purple, it sings."], 0),
    ("The default value is", ["None.", "seventeen elephants."], 0),
    ("This module provides", ["functions for working with files.", "fresh bread."], 0),
    ("Open the file and", ["read its contents.", "paint the house."], 0),
    ("A string is", ["a sequence of characters.", "a kind of fish."], 0),
]

# Perplexity: whole documents, one longer than a tiny model's window (several windows).
PPL = [
    "The function returns a new list of the values.",
    "Return the number of items in the container.",
    " ".join(["If the file does not exist, an exception is raised and nothing is written."] * 12),
]

# Cloze (loglikelihood): the last word of a sentence.
CLOZE = [
    "Return the value of the",
    "The default value is",
    "Raise an exception if the file is",
]

# Generation: a context and the answer (exact match after a stop at the first newline).
GEN = [("The default value is", "None"), ("Return the", "value")]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _task(folder: Path, name: str, data: Path, cache: Path, **fields: object) -> None:
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(cache)},
        "test_split": "test",
        **fields,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def write_tasks(folder: Path) -> Path:
    """``tiny_mc``, ``tiny_ppl``, ``tiny_cloze``, ``tiny_gen`` and ``tiny_missing`` (whose
    data file does not exist) in ``folder``; returns the folder (the include path)."""
    folder.mkdir(parents=True, exist_ok=True)
    data, cache = folder / "data", folder / "hf_cache"
    data.mkdir(exist_ok=True)
    _jsonl(
        data / "mc.jsonl",
        [{"question": q, "choices": c, "label": y} for q, c, y in MC],
    )
    _task(
        folder,
        "tiny_mc",
        data / "mc.jsonl",
        cache,
        output_type="multiple_choice",
        doc_to_text="{{question}}",
        doc_to_choice="{{choices}}",
        doc_to_target="{{label}}",
        metric_list=[{"metric": "acc"}, {"metric": "acc_norm"}],
    )
    _jsonl(data / "ppl.jsonl", [{"text": t} for t in PPL])
    _task(
        folder,
        "tiny_ppl",
        data / "ppl.jsonl",
        cache,
        output_type="loglikelihood_rolling",
        doc_to_text="",
        doc_to_target="{{text}}",
        metric_list=[{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}],
    )
    _jsonl(data / "cloze.jsonl", [{"text": t} for t in CLOZE])
    _task(
        folder,
        "tiny_cloze",
        data / "cloze.jsonl",
        cache,
        output_type="loglikelihood",
        doc_to_text="{{text.split(' ')[:-1]|join(' ')}}",
        doc_to_target="{{' '+text.split(' ')[-1]}}",
        metric_list=[
            {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
        ],
    )
    _jsonl(data / "gen.jsonl", [{"question": q, "answer": a} for q, a in GEN])
    _task(
        folder,
        "tiny_gen",
        data / "gen.jsonl",
        cache,
        output_type="generate_until",
        doc_to_text="{{question}}",
        doc_to_target="{{answer}}",
        generation_kwargs={"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
        metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    )
    _task(
        folder,
        "tiny_missing",
        data / "absent.jsonl",
        cache,
        output_type="multiple_choice",
        doc_to_text="{{question}}",
        doc_to_choice="{{choices}}",
        doc_to_target="{{label}}",
    )
    return folder
