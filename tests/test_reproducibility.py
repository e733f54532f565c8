"""What is reproducible, as docs/REPORTS.md ("Reproducibility") states it: the same run on
the same machine, torch build and thread count is bitwise equal; another stream of the same
seed (the A/A control arm's ``train.stream``) changes the initialisation and the data order
but not the evaluation items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from glmlab.assembly import build_run
from glmlab.cluster.control import control_jobs
from glmlab.config.spec import parse_config
from glmlab.runs.layout import EVAL_ITEMS, RESULT, WEIGHTS
from tests.conftest import TINY, run_glmlab

SMALL_SUITE = ["train.eval_suite_items=8", "train.cloze_items=8", "train.eval_suite=true"]


def spec_of(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return parse_config(compose("config", overrides=[*TINY, *SMALL_SUITE, *overrides]))


def _flat(node, prefix: str = "") -> dict:
    """Every tensor of a (nested) checkpoint by its dotted path."""
    if isinstance(node, dict):
        return {k: v for key, sub in node.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix: node} if isinstance(node, torch.Tensor) else {}


def _run(cwd: Path, name: str, *extra: str) -> Path:
    proc = run_glmlab([*TINY, *extra, f"hydra.run.dir={name}"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / name


@pytest.mark.slow  # two tiny runs end to end
def test_the_same_run_twice_is_bitwise_equal(tmp_path: Path) -> None:
    a, b = (_run(tmp_path, name, "train.threads=1") for name in ("a", "b"))
    wa, wb = (_flat(torch.load(d / WEIGHTS, weights_only=True)) for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = (json.loads((d / RESULT).read_text()) for d in (a, b))
    machine = {"peak_mem_mb", "train_tokens_per_s"}  # they measure the machine and its load
    ea, eb = ({k: v for k, v in r["eval"].items() if k not in machine} for r in (ra, rb))
    assert ra["final_val_loss"] == rb["final_val_loss"] and ea == eb and len(ea) >= 7
    ia, ib = (json.loads((d / EVAL_ITEMS).read_text()) for d in (a, b))
    assert ia["tasks"] == ib["tasks"]  # every item's score, to the last bit


def test_a_stream_changes_initialisation_and_data_order_not_the_items() -> None:
    main, stream = (spec_of(*extra) for extra in ((), ("train.stream=1",)))
    a, b = (build_run(s, torch.device("cpu")) for s in (main, stream))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert not all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(a.batches.train.batch(0).input_ids, b.batches.train.batch(0).input_ids)
    # The same held-out validation batches and evaluation items for every stream.
    assert torch.equal(
        a.batches.validation.batch(0).input_ids, b.batches.validation.batch(0).input_ids
    )
    assert a.eval_suite is not None and b.eval_suite is not None
    assert repr(a.eval_suite.infill) == repr(b.eval_suite.infill)
    assert repr(a.eval_suite.cloze) == repr(b.eval_suite.cloze)
    # Seed 1 on the main stream is neither.
    other = build_run(spec_of("seed=1"), torch.device("cpu")).model.state_dict()
    assert not all(torch.equal(other[k], sb[k]) for k in sb)


def test_the_sweeper_adds_the_control_arm_for_the_baseline_only() -> None:
    from omegaconf import OmegaConf

    batch = [
        ["objective.shuffle_spans=True", "seed=0"],
        ["objective.shuffle_spans=False", "seed=0"],
        ["objective.shuffle_spans=True", "seed=1"],
    ]
    config = OmegaConf.create(
        {"report": {"baseline": "objective.shuffle_spans=true", "control": True}}
    )
    assert control_jobs(batch, config) == [
        ["objective.shuffle_spans=True", "seed=0", "train.stream=1"],
        ["objective.shuffle_spans=True", "seed=1", "train.stream=1"],
    ]
    config.report.control = False
    assert control_jobs(batch, config) == []
    config.report.control = True
    assert control_jobs([["objective.shuffle_spans=True", "train.stream=2"]], config) == []
