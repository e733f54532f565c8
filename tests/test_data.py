"""Tests for glmlab.data: corpora, sentence splitting, tokenizer, examples, pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from glmlab.data.cache import cache_dir
from glmlab.data.corpus import load_corpus, split_train_validation
from glmlab.data.examples import ExampleSet, build_examples, tokenize_documents
from glmlab.data.pipeline import prepare_data
from glmlab.data.sentences import split_sentences
from glmlab.data.tokenizer import GLMTokenizer, load_or_train
from glmlab.structures import TokenizedText

WORDS = [
    "the",
    "model",
    "predicts",
    "masked",
    "spans",
    "autoregressively",
    "while",
    "attending",
    "bidirectionally",
    "to",
    "the",
    "corrupted",
    "text",
    "and",
    "each",
    "span",
    "is",
    "shuffled",
    "before",
    "being",
    "appended",
    "to",
    "part",
    "b",
    "of",
    "the",
    "input",
    "with",
    "its",
    "own",
    "start",
    "token",
]


def _paragraph(rng: np.random.Generator, n_sentences: int) -> str:
    sentences = []
    for _ in range(n_sentences):
        words = rng.choice(WORDS, size=int(rng.integers(4, 14))).tolist()
        sentences.append(" ".join(words).capitalize() + str(rng.choice([".", "?", "!", ";"])))
    return " ".join(sentences)


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GLMLAB_CACHE", str(cache))
    return cache


@pytest.fixture
def text_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "texts"
    (root / "sub").mkdir(parents=True)
    for i in range(12):
        folder = root / "sub" if i % 3 == 0 else root
        paras = [_paragraph(rng, int(rng.integers(1, 12))) for _ in range(int(rng.integers(1, 5)))]
        (folder / f"doc{i:02d}.txt").write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def small_tokenizer(text_dir: Path) -> GLMTokenizer:
    corpus = load_corpus("text_files", pattern=str(text_dir / "**" / "*.txt"))
    return load_or_train(corpus, vocab_size=600, n_sentinels=4)


# ------------------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n",
        "One sentence",
        "Hello world. How are you?  Fine!\nNext line\n\n  indented: yes; no",
        "  leading space. and trailing   ",
        "pi is 3.14, e.g. roughly\r\nok",
        "tabs\tand\x0bvertical\x0c feed. Ünïcödé — 日本語。 Done!",
    ],
)
def test_split_sentences_round_trip(text: str) -> None:
    parts = split_sentences(text)
    assert "".join(parts) == text
    assert all(parts)
    assert all(not p[0].isspace() for p in parts[1:])


def test_split_sentences_boundaries() -> None:
    text = "Hello world. How are you?  Fine!\nNext line\n\n  indented: yes; no"
    assert split_sentences(text) == [
        "Hello world. ",
        "How are you?  ",
        "Fine!\n",
        "Next line\n\n  ",
        "indented: ",
        "yes; ",
        "no",
    ]
    assert split_sentences("pi is 3.14 ok.") == ["pi is 3.14 ok."]
    assert split_sentences("\n\nFirst. Second") == ["\n\nFirst. ", "Second"]
    assert split_sentences("   ") == ["   "]


def test_split_sentences_random_round_trip() -> None:
    rng = np.random.default_rng(1)
    alphabet = list("ab .?!;:\n\t,")
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))).tolist())
        parts = split_sentences(text)
        assert "".join(parts) == text and all(parts)


# -------------------------------------------------------------------------- corpora


def test_cache_dir_from_env(_tmp_cache: Path) -> None:
    assert cache_dir() == _tmp_cache and _tmp_cache.is_dir()


def test_unknown_corpus_lists_known_names() -> None:
    with pytest.raises(ValueError, match="stdlib_docs.*text_files|text_files.*stdlib_docs"):
        load_corpus("nope")
    with pytest.raises(ValueError, match="does not accept"):
        load_corpus("jsonl", path="x", colour="red")


def test_text_files_units_and_split(text_dir: Path) -> None:
    pattern = str(text_dir / "**" / "*.txt")
    files = load_corpus("text_files", pattern=pattern)
    assert files.n_docs == 12
    assert files.train and files.validation  # never empty on a multi-doc corpus
    paras = load_corpus("text_files", pattern=pattern, unit="paragraph", validation_fraction=0.3)
    assert paras.n_docs > files.n_docs
    assert all("\n\n" not in d and d == d.strip() for d in paras.train + paras.validation)
    again = load_corpus("text_files", pattern=pattern, unit="paragraph", validation_fraction=0.3)
    assert again == paras
    assert paras.fingerprint != files.fingerprint
    # Same default spelled out: same fingerprint.
    assert load_corpus("text_files", pattern=pattern, unit="file").fingerprint == files.fingerprint


def test_text_files_empty_glob(tmp_path: Path) -> None:
    pattern = str(tmp_path / "missing" / "*.txt")
    with pytest.raises(ValueError, match="matched no files") as e:
        load_corpus("text_files", pattern=pattern)
    assert pattern in str(e.value)


def test_jsonl(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"body": f"document {i}"}) for i in range(20)) + "\n\n")
    corpus = load_corpus("jsonl", path=str(good), field="body")
    assert sorted(corpus.train + corpus.validation + corpus.test) == sorted(
        f"document {i}" for i in range(20)
    )

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_corpus("jsonl", path=str(bad))
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"text": "ok"}\n\n{"other": "x"}\n')
    with pytest.raises(ValueError, match=r"missing\.jsonl:3.*'text'"):
        load_corpus("jsonl", path=str(missing))


def test_split_is_by_text_hash() -> None:
    docs = [f"doc number {i}" for i in range(2000)]
    train, val = split_train_validation(docs, 0.1)
    assert 120 < len(val) < 280
    # A document's side does not depend on the others or on their order.
    train2, val2 = split_train_validation(docs[::-1], 0.1)
    assert set(val2) == set(val) and set(train2) == set(train)


def cache_files() -> dict[str, tuple[int, int]]:
    """Every file under the cache: relative path -> (inode, mtime in ns). A rebuilt entry
    is written anew (atomically: a new inode), so an unchanged snapshot means a cache hit."""
    root = cache_dir()
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.mark.slow
def test_stdlib_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path / "cache"))  # the first load parses
    before = set(sys.modules)
    corpus = load_corpus("stdlib_docs")
    written = cache_files()
    assert written, "the parsed corpus was not cached"
    again = load_corpus("stdlib_docs")
    assert again == corpus
    assert cache_files() == written  # read back from the cache, not parsed and written again
    # Parsed from source, never imported.
    assert not {"antigravity", "this", "turtle", "tkinter"} & (set(sys.modules) - before)
    docs = corpus.train + corpus.validation
    assert len(docs) == len(set(docs))
    assert all(len(d) >= 200 for d in docs)
    assert 300_000 < corpus.n_chars < 10_000_000 and corpus.n_docs > 500
    assert 0.02 < len(corpus.validation) / corpus.n_docs < 0.1
    short = load_corpus("stdlib_docs", min_chars=1000)
    assert all(len(d) >= 1000 for d in short.train + short.validation)
    assert short.fingerprint != corpus.fingerprint


# ------------------------------------------------------------------------ tokenizer


def test_tokenizer_round_trip_and_specials(small_tokenizer: GLMTokenizer) -> None:
    tok = small_tokenizer
    for text in ["the model predicts. Spans!", " leading\n\ttabs  ", "Ünïcödé 日本語 🙂", ""]:
        ids = tok.encode(text)
        assert ids.dtype == np.int64
        assert tok.decode(ids) == text
    names = ["[pad]", "[MASK]", "[sMASK]", "[gMASK]", "[sop]", "[eop]"]
    names += [f"[MASK_{i}]" for i in range(4)] + [f"[sop_{i}]" for i in range(4)]
    assert [tok.token_to_id(n) for n in names] == list(range(len(names)))
    assert [tok.id_to_token(i) for i in range(len(names))] == names
    sp = tok.specials
    assert (sp.pad, sp.mask, sp.smask, sp.gmask, sp.sop, sp.eop) == (0, 1, 2, 3, 4, 5)
    assert sp.sentinel_masks == (6, 7, 8, 9) and sp.sentinel_sops == (10, 11, 12, 13)
    assert [sp.mask_id(k) for k in ("MASK", "sMASK", "gMASK")] == [1, 2, 3]
    with pytest.raises(ValueError):
        sp.mask_id("XMASK")
    # Special names in text stay text.
    assert not set(tok.encode("[MASK] [sop] [pad]").tolist()) & set(range(len(names)))
    assert tok.decode([sp.sop, *tok.encode("x").tolist(), sp.eop]) == "[sop]x[eop]"
    assert tok.vocab_size <= 600
    assert tok.padded_vocab_size % 64 == 0 and 0 <= tok.padded_vocab_size - tok.vocab_size < 64
    batch = tok.encode_batch(["a b c", "the model"])
    assert [b.tolist() for b in batch] == [
        tok.encode("a b c").tolist(),
        tok.encode("the model").tolist(),
    ]


def test_tokenizer_cache_and_save(text_dir: Path, tmp_path: Path, _tmp_cache: Path) -> None:
    corpus = load_corpus("text_files", pattern=str(text_dir / "*.txt"))
    first = load_or_train(corpus, vocab_size=500, n_sentinels=2)
    cached = list(_tmp_cache.glob("tokenizers/*/tokenizer.json"))
    assert len(cached) == 1
    second = load_or_train(corpus, vocab_size=500, n_sentinels=2)
    assert second.hf_tokenizer.get_vocab() == first.hf_tokenizer.get_vocab()
    retrained = GLMTokenizer.train(corpus.train, vocab_size=500, n_sentinels=2)
    assert retrained.hf_tokenizer.get_vocab() == first.hf_tokenizer.get_vocab()  # deterministic
    path = first.save(tmp_path / "tok" / "tokenizer.json")
    loaded = GLMTokenizer.load(path)
    assert loaded.n_sentinels == 2 and loaded.specials == first.specials
    text = "bidirectionally shuffled spans."
    assert loaded.encode(text).tolist() == first.encode(text).tolist()
    with pytest.raises(ValueError, match="vocab_size"):
        GLMTokenizer.train(corpus.train, vocab_size=300, n_sentinels=100)


# ------------------------------------------------------------------------- examples


def _check_tokenized(t: TokenizedText) -> None:
    ends = t.sentence_ends
    assert t.ids.dtype == np.int64 and ends.dtype == np.int64
    assert len(ends) >= 1 and ends[-1] == len(t)
    assert ends[0] > 0 and np.all(np.diff(ends) > 0)


def test_tokenize_documents(small_tokenizer: GLMTokenizer) -> None:
    texts = ["First sentence. Second one!\nThird line", "", "single", "a. b. c."]
    docs = tokenize_documents(small_tokenizer, texts)
    assert len(docs) == 4
    assert len(docs[1]) == 0 and len(docs[1].sentence_ends) == 0
    for text, doc in zip(texts, docs, strict=True):
        assert small_tokenizer.decode(doc.ids) == text
        if text:
            _check_tokenized(doc)
    # The reference's token rule: a sentence ends after every token holding . ? ! ; : or a
    # newline (here "!" and "\n" are separate tokens: "\n" is a sentence of its own).
    for doc in (docs[0], docs[3]):
        pieces = np.split(doc.ids, doc.sentence_ends[:-1])
        texts_of = [small_tokenizer.decode(p) for p in pieces]
        assert all(any(c in small_tokenizer.decode(p[-1:]) for c in ".?!;:\n") for p in pieces[:-1])
        assert all(
            not any(c in small_tokenizer.decode([t]) for c in ".?!;:\n")
            for p in pieces
            for t in p[:-1]
        ), texts_of
    assert len(docs[3].sentence_ends) == 3


def _synthetic_docs(rng: np.random.Generator, n: int) -> list[TokenizedText]:
    docs, token = [], 0
    for _ in range(n):
        length = int(rng.integers(1, 300))
        ids = np.arange(token, token + length, dtype=np.int64)  # unique ids: trace every token
        token += length
        cuts = np.sort(
            rng.choice(np.arange(1, length), size=min(length - 1, length // 9), replace=False)
        )
        docs.append(TokenizedText(ids, np.append(cuts, length).astype(np.int64)))
    return docs


@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.parametrize("chunk_len", [16, 64, 128])
def test_build_examples(packing: bool, chunk_len: int) -> None:
    rng = np.random.default_rng(chunk_len)
    docs = _synthetic_docs(rng, 60)
    es = build_examples(docs, chunk_len=chunk_len, packing=packing, min_tokens=8)
    seen = []
    for i in range(len(es)):
        pieces = es[i]
        assert pieces and sum(map(len, pieces)) <= chunk_len
        if not packing:
            assert len(pieces) == 1
        for p in pieces:
            _check_tokenized(p)
            assert len(p) >= 8
            # A piece is a contiguous run of one document, sentence ends preserved inside.
            assert np.all(np.diff(p.ids) == 1)
            seen.append(p.ids)
    flat = np.concatenate(seen)
    assert len(flat) == len(np.unique(flat)) == es.n_tokens  # every kept token exactly once
    assert np.array_equal(es.example_lengths, [sum(map(len, es[i])) for i in range(len(es))])
    # Only pieces shorter than min_tokens were dropped.
    total = sum(map(len, docs))
    dropped = np.setdiff1d(np.arange(total), flat)
    assert len(dropped) == 0 or len(dropped) < total // 2
    if packing and chunk_len >= 64:  # at 16, two pieces of >= 8 tokens rarely fit
        assert any(len(es[i]) > 1 for i in range(len(es)))
        # Greedy: the next example's first piece would not have fit.
        for i in range(len(es) - 1):
            assert es.example_lengths[i] + len(es[i + 1][0]) > chunk_len


def test_chunking_prefers_sentence_ends() -> None:
    ids = np.arange(100, dtype=np.int64)
    # Sentence end at 90 lies in the last 25% of a 100-token... use chunk 40: window [30, 40].
    doc = TokenizedText(ids, np.array([10, 35, 50, 100], dtype=np.int64))
    es = build_examples([doc], chunk_len=40, packing=False, min_tokens=1)
    lengths = [len(es[i][0]) for i in range(len(es))]
    assert lengths[0] == 35  # soft cut at the sentence end at 35 (>= 30)
    assert es[0][0].sentence_ends.tolist() == [10, 35]
    # 35..75: no end in [65, 75] -> hard cut at 75; that chunk ends with a re-based 40.
    assert lengths[1] == 40 and es[1][0].sentence_ends.tolist() == [15, 40]
    assert lengths[2] == 25 and es[2][0].sentence_ends.tolist() == [25]


def test_example_set_save_load(tmp_path: Path) -> None:
    docs = _synthetic_docs(np.random.default_rng(3), 20)
    es = build_examples(docs, chunk_len=64, packing=True)
    path = es.save(tmp_path / "ex" / "train.npz")
    assert path.name == "train.npz"
    loaded = ExampleSet.load(path)
    assert len(loaded) == len(es) and loaded.n_tokens == es.n_tokens
    for i in (0, len(es) - 1, -1):
        assert all(
            np.array_equal(a.ids, b.ids) and np.array_equal(a.sentence_ends, b.sentence_ends)
            for a, b in zip(es[i], loaded[i], strict=True)
        )
    with pytest.raises(IndexError):
        es[len(es)]
    empty = build_examples([], chunk_len=8, packing=True)
    assert len(empty) == 0 and empty.n_tokens == 0
    assert len(ExampleSet.load(empty.save(tmp_path / "empty.npz"))) == 0


# ------------------------------------------------------------------------- pipeline


def test_prepare_data_caches(text_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {
        "vocab_size": 600,
        "n_sentinels": 4,
        "chunk_len": 64,
        "packing": True,
        "min_tokens": 8,
    }
    options = {"pattern": str(text_dir / "**" / "*.txt"), "unit": "paragraph"}
    first = prepare_data("text_files", options, **kwargs)
    assert len(first.train) > 0 and len(first.validation) > 0
    written = cache_files()
    with monkeypatch.context() as m:  # a cache hit trains no tokenizer and encodes no text

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("prepare_data redid cached work")

        m.setattr(GLMTokenizer, "train", refuse)
        m.setattr(GLMTokenizer, "encode_batch", refuse)
        second = prepare_data("text_files", options, **kwargs)
    assert cache_files() == written  # tokenizer and token stores read back, none rewritten
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(second.train.ids, first.train.ids)
    assert second.tokenizer.hf_tokenizer.get_vocab() == first.tokenizer.hf_tokenizer.get_vocab()
    other = prepare_data("text_files", options, **{**kwargs, "packing": False})
    assert other.fingerprint != first.fingerprint
    assert other.train.n_tokens == first.train.n_tokens and len(other.train) > len(first.train)
    ex = first.train[0]
    assert first.tokenizer.decode(ex[0].ids).strip()
