"""The fast preparation path (whole-document encoding, numpy chunking, bulk store writes)
gives exactly the stores of the straightforward one: tokenize_documents (sentence by
sentence), build_examples / ExampleWriter.add, document by document."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, pre_tokenizers

from glmlab.data.examples import build_examples, tokenize_documents
from glmlab.data.pieces import batch_pieces
from glmlab.data.sentence_encoder import PYTHON_WHITESPACE, SentenceEncoder
from glmlab.data.store_builder import SplitStores
from glmlab.data.token_store import ExampleWriter, open_store, store_meta
from glmlab.data.tokenizer import GLMTokenizer

ODD_TEXTS = [
    "",
    "a",
    "\n",
    "\n\nStarts with a newline. Then a sentence.",
    "\n  \t indented after a newline: yes",
    "  \nspaces, then a newline",
    " leading space. Then more",
    ". starts with a terminator",
    "a.. b... c!? d;: e",
    "Tab.\tthen\u00a0no-break. \u2028line separator.\u3000ideographic",
    "x\x1c y. \x1d\x1ez \x1f",
    "carriage\r\nreturns\r\n\r\n  and blank lines \n",
    "é. ü\n\n\n   ö:  ß  ",
    "It's the user's. They'll say 'd and 're; we've 'm.",
    "numbers 3.14 and 1,000,000. 42! 7?",
    "trailing whitespace after a terminator.   \t ",
    "no terminator at all",
    "([{brackets}]). -- dashes -- ... “quotes” — and 中文。句子！",
]


def _random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = [*"abcXYZé中1234567890", *".?!;:,'\"()-_", "'s", "'ll", "'d", "\x1c", "\x1f"]
    alphabet += [" ", " ", " ", "\n", "\t", "\r", "\xa0", "\u2028", "\u3000", "\x0b", "\x85"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(1)
    words = "the store maps tokens, and every rank reads them: once. Why? Because! e.g. 3.5".split()
    docs = []
    for _ in range(300):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(1, 14))) + rng.choice(".?!;:\n")
            for _ in range(rng.randint(1, 30))
        ]
        docs.append(rng.choice([" ", "  ", "\n", "\n\n  ", "\t"]).join(sentences))
    return docs + ODD_TEXTS + _random_texts(200)


@pytest.fixture(scope="module")
def tokenizer(texts: list[str]) -> GLMTokenizer:
    return GLMTokenizer.train(texts, vocab_size=500, n_sentinels=4)


def _reference_ids(tok: GLMTokenizer, docs: list[str]) -> list[np.ndarray]:
    return [d.ids for d in tokenize_documents(tok, docs)]


def test_python_whitespace_is_what_re_calls_whitespace() -> None:
    chars = "".join(chr(c) for c in range(sys.maxunicode + 1) if re.match(r"\s", chr(c)))
    assert chars == PYTHON_WHITESPACE


def test_whole_documents_encode_to_the_ids_of_their_sentences(
    tokenizer: GLMTokenizer, texts: list[str]
) -> None:
    fuzz = _random_texts(3000, seed=7)
    for docs in (texts, ODD_TEXTS, fuzz):
        ids, lengths = SentenceEncoder(tokenizer).encode(docs)
        reference = _reference_ids(tokenizer, docs)
        assert lengths.tolist() == [len(r) for r in reference]
        np.testing.assert_array_equal(ids, np.concatenate(reference).astype(ids.dtype))
    assert ids.dtype == np.uint16


def test_an_unfamiliar_pre_tokenizer_is_encoded_sentence_by_sentence(
    tokenizer: GLMTokenizer, texts: list[str]
) -> None:
    other = GLMTokenizer(Tokenizer.from_str(tokenizer.hf_tokenizer.to_str()))
    other.hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    encoder = SentenceEncoder(other)
    ids, _ = encoder.encode(texts[:50])
    reference = _reference_ids(other, texts[:50])
    np.testing.assert_array_equal(ids, np.concatenate(reference).astype(ids.dtype))
    # The whole-document path would differ here: the prefix space goes to every sentence.
    assert encoder._split is None


def _store_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.bin"))}


@pytest.mark.parametrize(
    ("chunk_len", "packing", "min_tokens", "batch"),
    [
        (64, True, 8, 1000),
        (64, True, 8, 7),
        (16, False, 4, 50),
        (5, True, 1, 33),
        (999, True, 3, 1),
    ],
)
def test_split_stores_equal_the_document_by_document_store(
    tokenizer: GLMTokenizer,
    texts: list[str],
    tmp_path: Path,
    chunk_len: int,
    packing: bool,
    min_tokens: int,
    batch: int,
) -> None:
    settings = {"chunk_len": chunk_len, "packing": packing, "min_tokens": min_tokens}
    docs = tokenize_documents(tokenizer, texts)
    ref = ExampleWriter(tmp_path / "ref", **settings, vocab_size=tokenizer.padded_vocab_size)
    ref.add_all(docs).close()
    with SplitStores({"train": tmp_path / "fast"}, tokenizer, **settings) as stores:
        for start in range(0, len(texts), batch):
            stores.add("train", texts[start : start + batch])
    assert _store_bytes(tmp_path / "fast") == _store_bytes(tmp_path / "ref")
    meta, ref_meta = store_meta(tmp_path / "fast"), store_meta(tmp_path / "ref")
    assert meta == ref_meta  # counts, documents and checksums
    built = build_examples(docs, **settings)
    fast = open_store(tmp_path / "fast")
    np.testing.assert_array_equal(np.asarray(fast.ids), built.ids)
    np.testing.assert_array_equal(np.asarray(fast.example_offsets), built.example_offsets)
    assert len(fast) > 1


def test_batch_pieces_of_empty_and_dropped_documents(tokenizer: GLMTokenizer) -> None:
    encoder = SentenceEncoder(tokenizer)
    ids, lengths = encoder.encode(["", "ab", ""])
    pieces = batch_pieces(ids, lengths, encoder.end_table, chunk_len=8, min_tokens=50)
    assert len(pieces.ids) == 0 and len(pieces.lengths) == 0 and len(pieces.sent_ends) == 0


def test_a_failed_batch_publishes_nothing(tokenizer: GLMTokenizer, tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        with SplitStores(
            {"train": tmp_path / "s"}, tokenizer, chunk_len=8, packing=True, min_tokens=1
        ) as s:
            s.add("train", ["fine text."])
            s.add("train", [None])  # type: ignore[list-item]
    assert not (tmp_path / "s").exists() and list(tmp_path.iterdir()) == []


def test_prepare_data_stores_equal_the_straightforward_examples(
    texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corpus prepared by prepare_data (the fast path) holds build_examples' examples."""
    from glmlab.data.corpus import load_corpus
    from glmlab.data.pipeline import prepare_data

    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    settings = {"vocab_size": 500, "n_sentinels": 4, "chunk_len": 64, "packing": True}
    data = prepare_data("jsonl", {"path": str(path)}, **settings, min_tokens=8)
    corpus = load_corpus("jsonl", path=str(path))
    for split, es in (("train", data.train), ("validation", data.validation)):
        docs = tokenize_documents(data.tokenizer, getattr(corpus, split))
        reference = build_examples(docs, chunk_len=64, packing=True, min_tokens=8)
        assert es.store is not None and len(es) > 0
        for name in ("ids", "piece_offsets", "sent_ends", "sent_offsets", "example_offsets"):
            np.testing.assert_array_equal(np.asarray(getattr(es, name)), getattr(reference, name))
