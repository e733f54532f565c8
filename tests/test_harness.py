"""lm-evaluation-harness tasks: the glmlab model through ``lm_eval.simple_evaluate`` equals
the same log-likelihoods computed by hand through glmlab's model (every family), the
results become per-item scores and metrics, and bad input is one line with nothing written.
The tasks are small local YAML tasks over jsonl files (tests/harness_tasks.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from glmlab.assembly import build_data, build_sample_parts, initial_model
from glmlab.cli.main import main as cli
from glmlab.cli.run import execute_run
from glmlab.config.spec import parse_config
from glmlab.harness.items import HarnessTask, task_items
from glmlab.harness.lm import GLMLabLM
from glmlab.harness.loading import LoadedRun
from glmlab.objective.batches import collate_rows
from glmlab.objective.sample import build_glm_sample
from glmlab.report.load import read_run
from glmlab.runs.layout import HARNESS_ITEMS
from glmlab.structures import GLMSample
from tests.conftest import TINY
from tests.harness_tasks import write_tasks

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tasks(tmp_path_factory.mktemp("tasks"))


def compose_cfg(*overrides: str):
    with initialize_config_module("glmlab.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


@pytest.fixture(scope="module")
def glm_run(tmp_path_factory: pytest.TempPathFactory, tasks: Path) -> Path:
    """A GLM trained for a few dozen steps, with a harness task scored at its end."""
    run_dir = tmp_path_factory.mktemp("glm_run")
    cfg = compose_cfg(
        "train.max_steps=24",
        "train.eval_suite=false",
        "harness.tasks=[tiny_mc]",
        f"harness.include_path={tasks}",
    )
    result = execute_run(cfg, run_dir, [])
    assert result.status == "completed" and result.harness_error is None, result
    return run_dir


def untrained(*overrides: str) -> GLMLabLM:
    """The harness model on a run's initial weights (no training, nothing on disk)."""
    spec = parse_config(compose_cfg(*overrides))
    data = build_data(spec)
    parts = build_sample_parts(spec, data)
    model = initial_model(spec, data.tokenizer.padded_vocab_size, CPU).eval()
    loaded = LoadedRun(
        Path("."), spec, data.tokenizer, parts.objective, parts.mask_builder, model, CPU, 0
    )
    return GLMLabLM(loaded=loaded, batch_size=3, progress=False)


@torch.no_grad()
def by_hand(lm: GLMLabLM, sample: GLMSample, scored: list[int]) -> tuple[float, bool]:
    """Summed log-probability of ``sample``'s targets at ``scored`` positions, from the
    full logits of one forward (no chunked head), and whether each is the argmax."""
    batch = collate_rows(
        [[sample]], seq_len=len(sample), pad_id=0, mask_builder=lm.run.mask_builder
    )
    model = lm.run.model
    logp = torch.log_softmax(
        model.logits(model(batch.input_ids, batch.position_ids, batch.layout)[0]).float(), -1
    )
    targets = torch.as_tensor(sample.target_ids)[scored]
    rows = logp[scored]
    total = float(rows.gather(1, targets[:, None]).sum())
    return total, bool((rows.argmax(-1) == targets).all())


def glm_by_hand(lm: GLMLabLM, context: list[int], continuation: list[int]) -> tuple[float, bool]:
    """A GLM's score: Part A = context + one mask at its end, Part B = [sop] continuation."""
    sp = lm.run.tokenizer.specials
    ids = [*context, *continuation]
    s = build_glm_sample(
        ids,
        [(len(context), len(ids))],
        mask_id=sp.mask_id(lm.reader.kind),
        sop_id=sp.sop,
        eop_id=sp.eop,
    )
    return by_hand(lm, s, list(range(s.sep, s.sep + len(continuation))))


def split(lm: GLMLabLM, context: str, continuation: str) -> tuple[list[int], list[int]]:
    tok = lm.run.tokenizer
    c = tok.encode(context).tolist()
    return c, tok.encode(context + continuation).tolist()[len(c) :]


@pytest.mark.slow
def test_the_end_of_a_run_scores_its_harness_tasks(glm_run):
    items = json.loads((glm_run / HARNESS_ITEMS).read_text())
    assert set(items["tasks"]) == {"tiny_mc/acc", "tiny_mc/acc_norm", "tiny_mc/prob"}
    assert len(items["tasks"]["tiny_mc/prob"]["credit"]) == 8
    assert items["scored"]["tiny_mc"]["step"] == 24
    run = read_run(glm_run)
    assert run.metrics["tiny_mc/acc"] == pytest.approx(
        np.mean(items["tasks"]["tiny_mc/acc"]["credit"])
    )
    assert run.eval_items["tasks"]["tiny_mc/prob"] == items["tasks"]["tiny_mc/prob"]
    chance = run.eval_items["reference_metrics"]["chance"]["tiny_mc/acc"]
    assert chance == pytest.approx(np.mean([1 / 3] * 2 + [1 / 2] * 6))


@pytest.mark.slow
def test_simple_evaluate_equals_the_log_likelihoods_by_hand(glm_run, tasks):
    lm = GLMLabLM(run_dir=glm_run, device="cpu", batch_size=5, progress=False)
    assert lm.reader.kind == "MASK"  # glm_token trained [MASK] only
    out = simple_evaluate(
        model="glmlab",
        model_args=f"run_dir={glm_run},device=cpu,batch_size=5",
        tasks=["tiny_mc", "tiny_ppl", "tiny_cloze"],
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
        bootstrap_iters=0,
        log_samples=True,
    )
    correct = []
    for s in out["samples"]["tiny_mc"]:
        scores = [glm_by_hand(lm, *split(lm, c, x)) for c, x in s["arguments"]]
        for (ll, greedy), resp in zip(scores, s["resps"], strict=True):
            assert resp[0][0] == pytest.approx(ll, abs=1e-4) and resp[0][1] == greedy
        correct.append(float(np.argmax([ll for ll, _ in scores]) == s["target"]))
    assert out["results"]["tiny_mc"]["acc,none"] == pytest.approx(np.mean(correct))

    words, total = 0, 0.0
    for s in out["samples"]["tiny_ppl"]:
        ids = lm.run.tokenizer.encode(s["doc"]["text"]).tolist()
        windows = list(
            map(make_disjoint_window, get_rolling_token_windows(ids, -1, lm.seq_len - 3, 1))
        )
        ll = sum(glm_by_hand(lm, [t for t in c if t != -1], x)[0] for c, x in windows)
        assert s["resps"][0][0] == pytest.approx(ll, abs=1e-3)
        assert sum(len(x) for _, x in windows) == len(ids)
        words += len(s["doc"]["text"].split())
        total += ll
    assert len(windows) > 1  # the long document spans several windows
    ppl = out["results"]["tiny_ppl"]["word_perplexity,none"]
    assert ppl == pytest.approx(math.exp(-total / words), rel=1e-5)

    # glmlab's per-item scores and metrics agree with lm-eval's aggregates.
    for name in ("tiny_mc", "tiny_ppl", "tiny_cloze"):
        task = TaskManager(include_path=str(tasks), include_defaults=False).load([name])["tasks"][
            name
        ]
        harness = HarnessTask(
            name,
            task.OUTPUT_TYPE,
            {m: f.__name__ for m, f in task.aggregation().items()},
            out["samples"][name],
            out["results"][name],
        )
        metrics = task_items(harness)["metrics"]
        reported = out["results"][name]
        if name == "tiny_mc":
            assert metrics["tiny_mc/acc_norm"] == pytest.approx(reported["acc_norm,none"])
            assert 0 < metrics["tiny_mc/prob"] < 1
        elif name == "tiny_ppl":
            assert metrics["tiny_ppl/word_ppl"] == pytest.approx(ppl, rel=1e-9)
            assert metrics["tiny_ppl/byte_ppl"] == pytest.approx(reported["byte_perplexity,none"])
        else:
            assert metrics["tiny_cloze/answer_ppl"] == pytest.approx(reported["perplexity,none"])
            lls = [s["resps"][0][0][0] for s in harness.samples]
            assert metrics["tiny_cloze/prob"] == pytest.approx(np.mean(np.exp(lls)))


@pytest.mark.slow
def test_generation_is_greedy_in_part_b_until_a_stop_string(glm_run):
    lm = GLMLabLM(run_dir=glm_run, device="cpu", progress=False)
    sp = lm.run.tokenizer.specials
    context = lm.run.tokenizer.encode("Return the value of the").tolist()
    made: list[int] = []
    for _ in range(6):  # by hand: Part B = [sop] + the output so far, its last input predicts
        ids = [*context, *made, sp.eop]
        s = build_glm_sample(
            ids,
            [(len(context), len(ids))],
            mask_id=sp.mask,
            sop_id=sp.sop,
            eop_id=sp.eop,
            final_eop=False,
        )
        batch = collate_rows([[s]], seq_len=len(s), pad_id=0, mask_builder=lm.run.mask_builder)
        with torch.no_grad():
            hidden = lm.run.model(batch.input_ids, batch.position_ids, batch.layout)
            logits = lm.run.model.logits(hidden[0, s.sep + len(made)]).float()
        banned = [i for i in sp.all_ids if i != sp.eop or not made]  # one token at least
        logits[banned] = -torch.inf
        token = int(logits.argmax())
        if token == sp.eop:
            break
        made.append(token)
    expected = lm.run.tokenizer.decode(made)
    assert made  # one token at least, as glmlab infill
    args = [("Return the value of the", {"until": ["\x00"], "max_gen_toks": 6})]
    assert lm._generate(args) == [expected]
    stop = expected[-1]  # a stop string cuts the output where it first appears
    cut = lm._generate([("Return the value of the", {"until": [stop], "max_gen_toks": 6})])
    assert cut == [expected[: expected.index(stop)]]


def test_clm_scores_left_to_right_and_mlm_by_pseudo_log_likelihood():
    clm = untrained("objective=clm", "mask_builder=causal")
    context, continuation = [40, 41, 42, 43], [44, 45, 46]
    ids = context + continuation
    s = GLMSample(
        np.asarray(ids[:-1]),
        np.stack([np.arange(6), np.zeros(6, dtype=np.int64)]),
        np.asarray(ids[1:]),
        np.zeros(6, np.float32),
        sep=0,
    )
    expected = by_hand(clm, s, [3, 4, 5])
    got = clm.score_pairs([(np.asarray(context), np.asarray(continuation))])[0]
    assert got[0] == pytest.approx(expected[0], abs=1e-4) and got[1] == expected[1]
    # No context: the first token is predicted after [eop].
    empty = clm.score_pairs([(np.asarray([], np.int64), np.asarray(continuation))])[0]
    first = [clm.run.tokenizer.specials.eop, *continuation]
    s0 = GLMSample(
        np.asarray(first[:-1]),
        np.stack([np.arange(3), np.zeros(3, dtype=np.int64)]),
        np.asarray(first[1:]),
        np.zeros(3, np.float32),
        sep=0,
    )
    assert empty[0] == pytest.approx(by_hand(clm, s0, [0, 1, 2])[0], abs=1e-4)

    mlm = untrained("objective=mlm", "mask_builder=bidirectional")
    n = len(ids)
    total = 0.0
    for i in range(len(context), n):  # each continuation token masked on its own
        inputs = np.asarray(ids)
        inputs[i] = mlm.run.tokenizer.specials.mask
        pos = np.stack([np.arange(n), np.zeros(n, dtype=np.int64)])
        total += by_hand(
            mlm, GLMSample(inputs, pos, np.asarray(ids), np.zeros(n, np.float32), n), [i]
        )[0]
    got = mlm.score_pairs([(np.asarray(context), np.asarray(continuation))])[0]
    assert got[0] == pytest.approx(total, abs=1e-4)


def test_long_contexts_are_cut_from_the_left_and_windows_cover_every_token():
    lm = untrained()  # a GLM: seq_len 64, Part A's mask and [sop] leave 62 tokens
    assert lm.reader.budget == 62
    context, continuation = np.arange(100, 200), np.arange(300, 310)
    kept = lm.reader.fit(context, continuation)
    assert kept.tolist() == list(range(148, 200))  # the last 52 context tokens
    ll_cut = lm.score_pairs([(context, continuation)])[0][0]
    assert ll_cut == pytest.approx(lm.score_pairs([(kept, continuation)])[0][0], abs=1e-5)
    with pytest.raises(ValueError, match="does not fit the model's window"):
        lm.reader.fit(context, np.arange(63))
    text = " ".join(["Return the value of the list."] * 40)
    windows = lm.rolling_windows(text)
    ids = lm.run.tokenizer.encode(text).tolist()
    assert [t for _, x in windows for t in x] == ids
    assert all(len(c) + len(x) <= lm.reader.budget for c, x in windows)
    assert len(windows[0][0]) == 0 and len(windows) > 2


def harness_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli(["harness", *args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.slow
def test_bad_input_is_one_line_and_nothing_is_written(glm_run, tasks, tmp_path, capsys):
    before = (glm_run / HARNESS_ITEMS).read_bytes()
    code, err = harness_cli(
        str(glm_run), "--tasks", "tiny_mcq", "--include-path", str(tasks), capsys=capsys
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown harness task 'tiny_mcq'" in err and "did you mean tiny_mc" in err
    code, err = harness_cli(
        str(glm_run), "--tasks", "tiny_missing", "--include-path", str(tasks), capsys=capsys
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert "'tiny_missing' needs the files" in err and "absent.jsonl" in err
    assert (glm_run / HARNESS_ITEMS).read_bytes() == before
    bare = tmp_path / "bare"  # a completed run that kept no weights
    bare.mkdir()
    for name in ("config.yaml", "result.json"):
        (bare / name).write_bytes((glm_run / name).read_bytes())
    code, err = harness_cli(
        str(bare), "--tasks", "tiny_mc", "--include-path", str(tasks), capsys=capsys
    )
    assert code == 2 and len(err.splitlines()) == 1 and "has no weights.pt" in err
    assert sorted(p.name for p in bare.iterdir()) == ["config.yaml", "result.json"]
    code, err = harness_cli(str(glm_run), "--tasks", "tiny_mc", "--limit", "0", capsys=capsys)
    assert code == 2 and err == "glmlab: harness limit=0: must be an integer >= 1"


@pytest.mark.slow
def test_the_glm_paper_preset_names_lm_eval_tasks_and_missing_hub_data_is_one_line(
    glm_run, tmp_path
):
    preset = yaml.safe_load((Path(__file__).parents[1] / "conf/harness/glm_paper.yaml").read_text())
    known = set(TaskManager().all_tasks)
    assert set(preset["tasks"]) <= known, set(preset["tasks"]) - known
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "empty"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "glmlab.cli", "harness", str(glm_run), "--tasks", "copa"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    line = proc.stderr.strip()
    assert "harness task 'copa' needs the dataset aps/super_glue (copa)" in line
    assert "glmlab harness --fetch --tasks copa" in line and "HF_DATASETS_OFFLINE=1" in line


def test_harness_tasks_without_kept_weights_are_refused_before_training(tmp_path, tasks):
    cfg = compose_cfg(
        "train.keep_checkpoint=none", "harness.tasks=[tiny_mc]", f"harness.include_path={tasks}"
    )
    result = execute_run(cfg, tmp_path / "run", [])
    assert result.status == "failed" and result.step == 0
    assert "train.keep_checkpoint=none" in result.error
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
