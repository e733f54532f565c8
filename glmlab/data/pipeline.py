"""From a corpus name to tokenized train/validation example sets, cached on disk."""

from __future__ import annotations

import logging
import time
import zipfile
from dataclasses import dataclass
from typing import Any

from glmlab.data.cache import cache_dir, cache_key, clean_cache_temps
from glmlab.data.corpus import load_corpus
from glmlab.data.examples import ExampleSet, build_examples, tokenize_documents
from glmlab.data.tokenizer import GLMTokenizer, load_or_train

__all__ = ["PreparedData", "check_splits", "prepare_data"]

log = logging.getLogger("glmlab")

_FORMAT = 2  # bump when tokenization/chunking rules change, to invalidate cached examples


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


def prepare_data(
    corpus: str,
    corpus_options: dict[str, Any] | None = None,
    *,
    vocab_size: int = 4096,
    n_sentinels: int = 100,
    chunk_len: int = 512,
    packing: bool = True,
    min_tokens: int = 8,
) -> PreparedData:
    """Load ``corpus``, get its tokenizer, tokenize and chunk both splits (all cached)."""
    t0 = time.perf_counter()
    clean_cache_temps()
    options = dict(corpus_options or {})
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
    )
    folder = cache_dir() / "examples" / f"{corpus}-{key}"
    paths = {split: folder / f"{split}.npz" for split in ("train", "validation")}
    sets: dict[str, ExampleSet] = {}
    if all(p.is_file() for p in paths.values()):
        try:
            sets = {split: ExampleSet.load(p) for split, p in paths.items()}
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
            # A corrupt or outdated entry is rebuilt, never fatal.
            log.warning("rebuilding unreadable cached examples in %s: %s", folder, e)
            sets = {}
    cached = bool(sets)
    if not cached:
        for split, texts in (("train", c.train), ("validation", c.validation)):
            docs = tokenize_documents(tokenizer, texts)
            sets[split] = build_examples(
                docs, chunk_len=chunk_len, packing=packing, min_tokens=min_tokens
            )
            sets[split].save(paths[split])

    for split, texts in (("train", c.train), ("validation", c.validation)):
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
    n_docs = {"train": len(c.train), "validation": len(c.validation)}
    return PreparedData(tokenizer, sets["train"], sets["validation"], corpus, key, n_docs)


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
