"""From a corpus name to tokenized train/validation example sets, cached on disk."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmlab.data.cache import cache_dir, cache_key, clean_cache_temps
from glmlab.data.corpus import SPLITS, load_corpus
from glmlab.data.examples import ExampleSet
from glmlab.data.store_builder import BATCH_DOCS, SplitStores
from glmlab.data.token_store import open_store, store_exists
from glmlab.data.tokenizer import GLMTokenizer, load_or_train

__all__ = ["PreparedData", "check_splits", "prepare_data"]

log = logging.getLogger("glmlab")

_FORMAT = 3  # bump when tokenization/chunking rules change, to invalidate cached examples


@dataclass(frozen=True)
class PreparedData:
    """Everything the loader needs. ``fingerprint`` identifies the corpus contents *and*
    every preparation setting (it is the examples' cache key)."""

    tokenizer: GLMTokenizer
    train: ExampleSet
    validation: ExampleSet
    corpus_name: str
    fingerprint: str
    n_docs: dict[str, int] | None = None  # documents per split, as the corpus gave them
    # The test split (data.corpus_options.test_fraction): what the evaluation suite reads,
    # never the validation loss or a ladder's lr choice; None or empty: no test split.
    test: ExampleSet | None = None

    @property
    def evaluation(self) -> ExampleSet:
        """The examples the evaluation suite draws its items from: the test split, or the
        validation split when the corpus has no test split (test_fraction=0)."""
        return self.test if self.test is not None and len(self.test) else self.validation


def load_tokenizer_file(path: str) -> GLMTokenizer:
    """A tokenizer given as a file (``data.tokenizer_file``), with a clear error."""
    file = Path(os.path.expanduser(path))
    if not file.is_file():
        raise ValueError(f"data.tokenizer_file={path!r}: no such file")
    try:
        return GLMTokenizer.load(file)
    except ValueError as exc:
        raise ValueError(
            f"data.tokenizer_file={path!r}: {exc}. Give a tokenizer.json that glmlab wrote "
            "(its cache's tokenizers/<key>/tokenizer.json, or GLMTokenizer.save)"
        ) from None
    except Exception as exc:  # the tokenizers library raises bare Exceptions on bad JSON
        raise ValueError(f"data.tokenizer_file={path!r}: not a tokenizer.json ({exc})") from None


def prepare_data(
    corpus: str,
    corpus_options: dict[str, Any] | None = None,
    *,
    vocab_size: int,
    n_sentinels: int,
    chunk_len: int,
    packing: bool,
    min_tokens: int,
    tokenizer_file: str | None = None,
) -> PreparedData:
    """Load ``corpus``, get its tokenizer (``tokenizer_file``, else trained on the corpus),
    tokenize and chunk both splits into memory-mapped token stores (all cached). The
    settings have no defaults here: the run's come from ``data`` (glmlab/config/schema.py)."""
    t0 = time.perf_counter()
    clean_cache_temps()
    options = dict(corpus_options or {})
    if corpus == "hf":  # streamed through Hugging Face datasets (glmlab/data/hf.py)
        from glmlab.data.hf import prepare_hf

        tok, train, validation, test, key, stats = prepare_hf(
            options,
            vocab_size=vocab_size,
            n_sentinels=n_sentinels,
            chunk_len=chunk_len,
            packing=packing,
            min_tokens=min_tokens,
            tokenizer_file=tokenizer_file,
        )
        for split, meta in stats.items():
            log.info(
                "data hf/%s: %d docs -> %d tokens in %d examples (%d pieces)",
                split,
                meta["n_docs"],
                meta["n_tokens"],
                meta["n_examples"],
                meta["n_pieces"],
            )
        log.info("prepared hf in %.2fs (vocab %d)", time.perf_counter() - t0, tok.vocab_size)
        return PreparedData(tok, train, validation, corpus, key, test=test)
    c = load_corpus(corpus, **options)
    for split, docs in (("train", c.train), ("validation", c.validation)):
        if not docs:  # before the tokenizer is trained: fail fast, and say why
            raise ValueError(
                f"corpus {corpus!r}: the {split} split is empty ({c.n_docs} document(s) in "
                "all, split by validation_fraction); give the corpus more documents (2 at "
                "least, one per split)"
                + (
                    " or raise data.corpus_options.validation_fraction"
                    if split == "validation"
                    else ""
                )
            )
    if tokenizer_file:
        tokenizer = load_tokenizer_file(tokenizer_file)
    else:
        tokenizer = load_or_train(c, vocab_size=vocab_size, n_sentinels=n_sentinels)
    key = cache_key(
        "examples",
        _FORMAT,
        c.fingerprint,
        vocab_size,
        n_sentinels,
        chunk_len,
        packing,
        min_tokens,
        cache_key(tokenizer.hf_tokenizer.to_str()) if tokenizer_file else None,
    )
    folder = cache_dir() / "examples" / f"{corpus}-{key}"
    # Memory-mapped token stores (glmlab/data/token_store.py): shared by every process.
    paths = {split: folder / split for split in SPLITS}
    sets: dict[str, ExampleSet] = {}
    if all(store_exists(p) for p in paths.values()):
        try:
            sets = {split: open_store(p) for split, p in paths.items()}
        except (OSError, EOFError, ValueError, KeyError) as e:
            # A corrupt or outdated entry is rebuilt, never fatal.
            log.warning("rebuilding unreadable cached examples in %s: %s", folder, e)
            for p in paths.values():
                shutil.rmtree(p, ignore_errors=True)
            sets = {}
    cached = bool(sets)
    if not cached:
        # Batches of documents straight into the stores (glmlab/data/store_builder.py): the
        # same examples as tokenize_documents + build_examples, without holding them.
        with SplitStores(
            paths, tokenizer, chunk_len=chunk_len, packing=packing, min_tokens=min_tokens
        ) as stores:
            for split, texts in (
                ("train", c.train),
                ("validation", c.validation),
                ("test", c.test),
            ):
                for start in range(0, len(texts), BATCH_DOCS):
                    stores.add(split, texts[start : start + BATCH_DOCS])
        sets = {split: open_store(p) for split, p in paths.items()}

    for split, texts in (("train", c.train), ("validation", c.validation), ("test", c.test)):
        es = sets[split]
        log.info(
            "data %s/%s: %d docs, %d chars -> %d tokens in %d examples (%d pieces)",
            corpus,
            split,
            len(texts),
            sum(map(len, texts)),
            es.n_tokens,
            len(es),
            es.n_pieces,
        )
    log.info(
        "prepared %s in %.2fs (%s; vocab %d, padded %d)",
        corpus,
        time.perf_counter() - t0,
        "cached" if cached else "built",
        tokenizer.vocab_size,
        tokenizer.padded_vocab_size,
    )
    n_docs = {"train": len(c.train), "validation": len(c.validation), "test": len(c.test)}
    return PreparedData(
        tokenizer, sets["train"], sets["validation"], corpus, key, n_docs, test=sets["test"]
    )


def check_splits(data: PreparedData, *, min_tokens: int) -> None:
    """Raise a clear ValueError (naming the corpus, the split and what to change) when a
    split has no example: training or validation would otherwise fail, or report nothing."""
    for split, examples in (("train", data.train), ("validation", data.validation)):
        if len(examples) > 0:
            continue
        docs = (data.n_docs or {}).get(split)
        if docs == 0:
            why = f"it has no documents (the corpus gave {sum((data.n_docs or {}).values())})"
            fix = "give the corpus more documents (2 at least, one per split)"
            if split == "validation":
                fix += " or raise data.corpus_options.validation_fraction"
        else:
            why = f"none of its {docs} documents has data.min_tokens={min_tokens} tokens"
            fix = "lower data.min_tokens or give longer documents"
        raise ValueError(f"corpus {data.corpus_name!r}: the {split} split is empty: {why}; {fix}")
