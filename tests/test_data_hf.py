"""The hf corpus (Hugging Face datasets) and the memory-mapped token stores every corpus
now uses; a tokenizer given as a file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from glmlab.data.examples import ExampleSet, build_examples, tokenize_documents
from glmlab.data.pipeline import prepare_data
from glmlab.data.token_store import ExampleWriter, open_store, write_store
from glmlab.data.tokenizer import GLMTokenizer
from glmlab.objective.batches import BatchSource

SETTINGS = {"vocab_size": 400, "n_sentinels": 8, "chunk_len": 48, "min_tokens": 4, "packing": True}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [
        f"Record {i} keeps the value {i * 13}. It was read at {i % 24} o'clock; "
        f"the sensor {i % 7} agreed.\nA second line for record {i} follows here." * (1 + i % 3)
        for i in range(120)
    ]


@pytest.fixture(scope="module")
def jsonl(texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    return path


def _same(a: ExampleSet, b: ExampleSet) -> None:
    assert len(a) == len(b) and a.n_tokens == b.n_tokens
    np.testing.assert_array_equal(np.asarray(a.ids), np.asarray(b.ids))
    np.testing.assert_array_equal(np.asarray(a.example_offsets), np.asarray(b.example_offsets))
    np.testing.assert_array_equal(np.asarray(a.sent_ends), np.asarray(b.sent_ends))


def test_streamed_store_equals_build_examples(texts: list[str], tmp_path: Path) -> None:
    tok = GLMTokenizer.train(texts, vocab_size=400, n_sentinels=8)
    docs = tokenize_documents(tok, texts)
    for packing in (True, False):
        built = build_examples(docs, chunk_len=48, packing=packing, min_tokens=4)
        folder = tmp_path / f"store-{packing}"
        with ExampleWriter(folder, chunk_len=48, packing=packing, min_tokens=4) as w:
            w.add_all(docs)
        streamed = open_store(folder)
        _same(streamed, built)
        assert streamed.ids.dtype == np.uint16  # a 400-token vocabulary fits
        assert [p.ids.tolist() for p in streamed[3]] == [p.ids.tolist() for p in built[3]]
    big = open_store(write_store(built, tmp_path / "big", vocab_size=70000))
    assert big.ids.dtype == np.int32
    _same(big, built)


def test_store_is_memory_mapped_and_pickles_as_a_path(texts: list[str], tmp_path: Path) -> None:
    tok = GLMTokenizer.train(texts, vocab_size=400, n_sentinels=8)
    built = build_examples(tokenize_documents(tok, texts), chunk_len=48, packing=True)
    es = open_store(write_store(built, tmp_path / "s", vocab_size=tok.padded_vocab_size))
    # A read-only view of a file mapping, not an array of its own.
    assert isinstance(es.ids.base, np.memmap) and not es.ids.flags.writeable
    blob = pickle.dumps(es)
    assert len(blob) < 1000  # the folder, not the tokens
    _same(pickle.loads(blob), built)


def test_batches_stay_a_function_of_seed_and_index(texts: list[str], tmp_path: Path) -> None:
    from glmlab.objective.baselines import CLMObjective
    from glmlab.plugin.registry import get_registry

    tok = GLMTokenizer.train(texts, vocab_size=400, n_sentinels=8)
    built = build_examples(tokenize_documents(tok, texts), chunk_len=48, packing=True)
    stored = open_store(write_store(built, tmp_path / "s", vocab_size=tok.padded_vocab_size))
    mask = get_registry().create("mask_builder", "causal")
    common = dict(mask_builder=mask, seq_len=64, pad_id=tok.specials.pad, batch_size=4, seed=3)
    a = BatchSource(built, CLMObjective(), **common).batch(5)
    b = BatchSource(stored, CLMObjective(), **common).batch(5)
    assert np.array_equal(a.input_ids.numpy(), b.input_ids.numpy())


def test_hf_corpus_matches_the_jsonl_corpus(jsonl: Path) -> None:
    pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    ref = prepare_data("jsonl", {"path": str(jsonl)}, **SETTINGS)
    hf = prepare_data("hf", {"path": str(jsonl), "num_proc": 2}, **SETTINGS)
    assert hf.tokenizer.hf_tokenizer.to_str() == ref.tokenizer.hf_tokenizer.to_str()
    _same(hf.train, ref.train)
    _same(hf.validation, ref.validation)
    assert hf.train.ids.dtype == np.uint16 and hf.train.store is not None
    again = prepare_data("hf", {"path": str(jsonl), "num_proc": 1}, **SETTINGS)  # cached
    assert again.fingerprint == hf.fingerprint and again.train.store == hf.train.store


def test_hf_reads_parquet_and_text(texts: list[str], jsonl: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    ds = datasets.load_dataset("json", data_files=str(jsonl), split="train")
    ds.to_parquet(str(tmp_path / "c.parquet"))
    ref = prepare_data("jsonl", {"path": str(jsonl)}, **SETTINGS)
    pq = prepare_data("hf", {"path": str(tmp_path / "c.parquet")}, **SETTINGS)
    _same(pq.train, ref.train)
    ds.save_to_disk(str(tmp_path / "arrow"))
    _same(prepare_data("hf", {"path": str(tmp_path / "arrow")}, **SETTINGS).train, ref.train)
    (tmp_path / "t.txt").write_text("\n".join(t.replace("\n", " ") for t in texts))
    txt = prepare_data("hf", {"path": str(tmp_path / "t.txt")}, **SETTINGS)
    assert len(txt.train) > 0


def test_hf_errors_are_clear(jsonl: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    with pytest.raises(ValueError, match="no column 'body'"):
        prepare_data("hf", {"path": str(jsonl), "field": "body"}, **SETTINGS)
    with pytest.raises(ValueError, match="does not accept option"):
        prepare_data("hf", {"path": str(jsonl), "pattern": "x"}, **SETTINGS)
    with pytest.raises(ValueError, match="no data files match"):
        prepare_data("hf", {"path": str(tmp_path / "none*.jsonl")}, **SETTINGS)
    with pytest.raises(ValueError, match=r"max_line_mb='8': must be a number > 0"):
        prepare_data("hf", {"path": str(jsonl), "max_line_mb": "8"}, **SETTINGS)


def test_tokenizer_file_is_used_instead_of_training(jsonl: Path, tmp_path: Path) -> None:
    ref = prepare_data("jsonl", {"path": str(jsonl)}, **SETTINGS)
    other = GLMTokenizer.train(["a b c d e f g"] * 50, vocab_size=300, n_sentinels=8)
    path = other.save(tmp_path / "tokenizer.json")
    given = prepare_data("jsonl", {"path": str(jsonl)}, **SETTINGS, tokenizer_file=str(path))
    assert given.tokenizer.hf_tokenizer.to_str() == other.hf_tokenizer.to_str()
    assert given.fingerprint != ref.fingerprint
    with pytest.raises(ValueError, match="data.tokenizer_file=.*no such file"):
        prepare_data("jsonl", {"path": str(jsonl)}, **SETTINGS, tokenizer_file="nope.json")


@pytest.mark.slow
def test_a_run_trains_on_the_hf_corpus_with_a_shared_tokenizer(jsonl: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    from tests.conftest import TINY, run_glmlab

    tok = prepare_data(
        "jsonl", {"path": str(jsonl)}, **{**SETTINGS, "vocab_size": 512, "n_sentinels": 16}
    ).tokenizer
    tok_file = tok.save(tmp_path / "shared" / "tokenizer.json")
    args = [*TINY, "data=hf", f"data.corpus_options.path={jsonl}", "train.eval_suite=false"]
    args += [f"data.tokenizer_file={tok_file}", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_glmlab(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["step"] == 6


def _read_all(reader, files: list[Path], field: str = "text") -> list:
    return [v for batch in reader([str(f) for f in files], field, 1.0) for v in batch]


def test_file_readers_give_what_datasets_gives(tmp_path: Path) -> None:
    """glmlab's own JSON Lines / parquet / text readers (bounded memory, no Arrow copy)
    yield the documents that datasets' loaders yield, in the same order."""
    datasets = pytest.importorskip("datasets", reason="datasets is the glmlab[hf] extra")
    from glmlab.data.file_batches import json_lines_batches, parquet_batches, text_batches

    records = [{"text": f"doc {i}\r\nline\u2028sep. ", "n": i} for i in range(2500)]
    records[7] = {"n": 7}  # no text: None, as datasets gives it
    jl = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    jl[0].write_text("".join(json.dumps(r) + "\n" for r in records[:1200]))
    jl[1].write_text("".join(json.dumps(r) + "\n" for r in records[1200:]))
    cache = str(tmp_path / "hf")
    theirs = datasets.load_dataset("json", data_files=[str(f) for f in jl], cache_dir=cache)
    assert _read_all(json_lines_batches, jl) == theirs["train"]["text"]
    pq = tmp_path / "c.parquet"
    theirs["train"].to_parquet(str(pq), batch_size=700)
    assert _read_all(parquet_batches, [pq]) == theirs["train"]["text"]
    txt = tmp_path / "t.txt"
    txt.write_bytes("one\r\ntwo\rthree\n\n  four \u2028 five\x1c\nlast".encode() * 700)
    theirs = datasets.load_dataset("text", data_files=str(txt), cache_dir=cache)["train"]
    assert _read_all(text_batches, [txt]) == theirs["text"]


def test_file_readers_refuse_bad_input_clearly(tmp_path: Path) -> None:
    from glmlab.data.file_batches import json_lines_batches, parquet_batches, text_batches

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        _read_all(text_batches, [bad])
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_bytes(b'{"text": "fine"}\n{"text": "bad \xff byte"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid UTF-8"):
        _read_all(json_lines_batches, [bad_json])
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"text": "x" * (2**20 + 10)}) + "\n")
    with pytest.raises(ValueError, match=r"long.jsonl:1: line longer than 1 MiB"):
        _read_all(json_lines_batches, [long])
    with pytest.raises(ValueError, match=r"long.txt:1: line longer than 1 MiB"):
        (tmp_path / "long.txt").write_text("y" * (2**20 + 10))
        _read_all(text_batches, [tmp_path / "long.txt"])
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a"]}), str(tmp_path / "p.parquet"))
    with pytest.raises(ValueError, match="no column 'text'; columns: \\['body'\\]"):
        _read_all(parquet_batches, [tmp_path / "p.parquet"])


def test_a_writer_interrupted_by_an_exception_publishes_nothing(
    texts: list[str], tmp_path: Path
) -> None:
    tok = GLMTokenizer.train(texts, vocab_size=400, n_sentinels=8)
    docs = tokenize_documents(tok, texts)
    folder = tmp_path / "store"
    with pytest.raises(RuntimeError, match="stop"):
        with ExampleWriter(folder, chunk_len=48, packing=True, min_tokens=4) as w:
            w.add_all(docs[:5])
            raise RuntimeError("stop")
    assert not folder.exists() and list(tmp_path.iterdir()) == []  # no store, no temp
    with ExampleWriter(folder, chunk_len=48, packing=True, min_tokens=4) as w:
        w.add_all(docs[:5])
    assert len(open_store(folder)) > 0  # a clean exit publishes
