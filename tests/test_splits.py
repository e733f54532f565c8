"""Train / validation / test: the evaluation suite's items come from a split that the
validation loss (and a ladder's lr choice, which reads it) never reads."""

from __future__ import annotations

import logging

import pytest

from glmlab.data.corpus import TEST_FRACTION, load_corpus, split_documents


def test_three_disjoint_splits_by_text_hash():
    docs = [f"doc number {i}" for i in range(4000)]
    parts = split_documents(docs, 0.05, 0.05)
    assert sum(map(len, parts.values())) == len(docs)
    assert not set(parts["validation"]) & set(parts["test"])
    for held_out in ("validation", "test"):
        assert 140 < len(parts[held_out]) < 260  # 5% of 4000, binomial sd ~14
    # A document's split depends on its text only: the same from a reversed corpus, and
    # adding a test split leaves the validation split as it was.
    again = split_documents(docs[::-1], 0.05, 0.05)
    assert {k: set(v) for k, v in again.items()} == {k: set(v) for k, v in parts.items()}
    assert set(split_documents(docs, 0.05)["validation"]) == set(parts["validation"])


def test_small_corpora_keep_every_split_they_can():
    parts = split_documents([f"d{i}" for i in range(3)], 0.05, 0.05)
    assert all(len(v) == 1 for v in parts.values())
    two = split_documents(["a", "b"], 0.05, 0.05)  # room for validation only
    assert len(two["train"]) == 1 and len(two["validation"]) == 1 and not two["test"]


def test_test_fraction_is_checked_before_reading(tmp_path):
    with pytest.raises(ValueError, match=r"test_fraction=1.5: must be a number in \[0, 1\)"):
        load_corpus("text_files", pattern=str(tmp_path / "none*.txt"), test_fraction=1.5)
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        load_corpus(
            "text_files",
            pattern=str(tmp_path / "none*.txt"),
            validation_fraction=0.5,
            test_fraction=0.5,
        )


def _spec(*overrides: str):
    from glmlab.cli.inspect import compose_config
    from glmlab.config.spec import parse_config
    from tests.conftest import TINY

    return parse_config(
        compose_config([o for o in TINY if not o.startswith("train.")] + list(overrides))
    )


def test_the_suite_reads_the_test_split_not_the_validation_split():
    from glmlab.assembly.data import build_data, build_eval_examples

    spec = _spec()
    data = build_data(spec)
    assert data.test is not None and len(data.test) > 0
    evaluated = build_eval_examples(spec, data)
    assert evaluated is data.test
    as_text = lambda es: {tuple(es.piece(p).ids) for p in range(es.n_pieces)}  # noqa: E731
    assert not as_text(evaluated) & as_text(data.validation)
    # MLM / CLM runs chunk their data otherwise; the suite still reads the GLM test split.
    clm = _spec("objective=clm", "mask_builder=causal")
    assert as_text(build_eval_examples(clm, build_data(clm))) == as_text(data.test)
    assert TEST_FRACTION > 0


def test_no_test_split_falls_back_to_validation_and_says_so(caplog):
    from glmlab.assembly.data import build_data, build_eval_examples

    spec = _spec("+data.corpus_options.test_fraction=0")
    data = build_data(spec)
    with caplog.at_level(logging.WARNING, logger="glmlab"):
        assert build_eval_examples(spec, data) is data.validation
    assert "not held out from the validation loss" in caplog.text
