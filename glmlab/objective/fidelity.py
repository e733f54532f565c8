"""The statistics docs/FIDELITY.md compares with the reference's (GLM_NOTES.md).

``python -m glmlab.objective.fidelity`` tokenises ``stdlib_docs`` through the data pipeline and
measures the built-in span samplers the way the reference's figures were measured: the
token level on whole documents of 128-512 tokens (8 draws each), the sentence level on packed
rows, the document level on batches of documents. Tests use the same functions on a smaller
sample (tests/test_fidelity.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from glmlab.data.corpus import load_corpus
from glmlab.data.examples import build_examples, tokenize_documents
from glmlab.data.tokenizer import load_or_train
from glmlab.plugin.registry import get_registry
from glmlab.structures import SpanSet, TokenizedText


def stdlib_documents(vocab_size: int = 4096, lo: int = 128, hi: int = 512) -> list[TokenizedText]:
    """The training documents of ``stdlib_docs`` with ``lo..hi`` tokens, in corpus order."""
    corpus = load_corpus("stdlib_docs", min_chars=200, validation_fraction=0.05)
    tokenizer = load_or_train(corpus, vocab_size=vocab_size, n_sentinels=100)
    docs = tokenize_documents(tokenizer, corpus.train)
    return [d for d in docs if lo <= len(d) <= hi]


def stdlib_rows(vocab_size: int = 4096, chunk_len: int = 448) -> list[list[TokenizedText]]:
    """``stdlib_docs`` training rows as the loader packs them (``chunk_len`` tokens)."""
    corpus = load_corpus("stdlib_docs", min_chars=200, validation_fraction=0.05)
    tokenizer = load_or_train(corpus, vocab_size=vocab_size, n_sentinels=100)
    docs = tokenize_documents(tokenizer, corpus.train)
    return list(build_examples(docs, chunk_len=chunk_len, packing=True))


@dataclass
class TokenStats:
    spans_per_sample: float
    span_length_mean: float
    length_one_share: float
    rightmost_span_mean: float
    masked_fraction_mean: float
    masked_fraction_sd: float
    one_token_gap_share: float


def token_stats(sets: Sequence[SpanSet]) -> TokenStats:
    lengths = np.array([e - s for x in sets for s, e in x.spans])
    gaps = np.array(
        [b - e for x in sets for (_, e), (b, _) in zip(x.spans, x.spans[1:], strict=False)]
    )
    fractions = np.array([x.n_masked / x.keep for x in sets])
    return TokenStats(
        spans_per_sample=float(np.mean([len(x.spans) for x in sets])),
        span_length_mean=float(lengths.mean()),
        length_one_share=float((lengths == 1).mean()),
        rightmost_span_mean=float(np.mean([x.spans[-1][1] - x.spans[-1][0] for x in sets])),
        masked_fraction_mean=float(fractions.mean()),
        masked_fraction_sd=float(fractions.std()),
        one_token_gap_share=float((gaps == 1).mean()),
    )


def draw_token(docs: Sequence[TokenizedText], draws: int, seed: int = 0) -> list[SpanSet]:
    sampler = get_registry().create("span_sampler", "token")
    rng = np.random.default_rng(seed)
    return [sampler.sample(d, max_len=2 * len(d), rng=rng) for d in docs for _ in range(draws)]


def sentence_stats(
    rows: Sequence[Sequence[TokenizedText]], seq_len: int, seed: int = 0
) -> dict[str, float]:
    """Masked fraction of the row (the reference's unit) and mean sentence length."""
    sampler = get_registry().create("span_sampler", "sentence")
    rng = np.random.default_rng(seed)
    fractions, no_context = [], 0
    n_pieces = 0
    for row in rows:
        sets = sampler.sample_row(row, max_len=seq_len, rng=rng)
        fractions.append(sum(s.n_masked for s in sets) / sum(s.keep for s in sets))
        no_context += sum(s.n_masked == s.keep for s in sets)
        n_pieces += len(sets)
    lengths = np.concatenate([np.diff(p.sentence_ends, prepend=0) for row in rows for p in row])
    return {
        "masked_fraction_mean": float(np.mean(fractions)),
        "sentence_length_mean": float(lengths.mean()),
        "fully_masked_piece_share": no_context / n_pieces,
    }


def document_stats(
    docs: Sequence[TokenizedText], batch_size: int, seed: int = 0, draws: int = 1
) -> dict[str, float]:
    """The document level over batches of ``batch_size`` consecutive documents, each batch
    drawn ``draws`` times."""
    base = get_registry().create("span_sampler", "document")
    rng = np.random.default_rng(seed)
    fractions, at_end, context = [], [], []
    for i in [j for j in range(0, len(docs) - batch_size + 1, batch_size) for _ in range(draws)]:
        batch = docs[i : i + batch_size]
        sampler = base.for_batch(batch, rng=rng)
        for d in batch:
            s = sampler.sample(d, max_len=len(d) + 2, rng=rng)
            ((a, b),) = s.spans
            fractions.append((b - a) / s.keep)
            at_end.append(b == s.keep)
            context.append(s.keep - (b - a))
    return {
        "masked_fraction_mean": float(np.mean(fractions)),
        "span_at_text_end_share": float(np.mean(at_end)),
        "min_context_tokens": float(np.min(context)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args(argv)
    docs = stdlib_documents(args.vocab_size)
    print(f"token level, {len(docs)} documents of 128-512 tokens x 8 draws:")
    print(f"  {token_stats(draw_token(docs, 8))}")
    for seq_len in (512, 128):
        rows = stdlib_rows(args.vocab_size, chunk_len=int(seq_len * 0.875))
        print(f"sentence level, {len(rows)} packed rows of seq_len {seq_len}:")
        print(f"  {sentence_stats(rows, seq_len)}")
    print(f"document level, {len(docs)} documents, batches of 16:")
    print(f"  {document_stats(docs, 16)}")


if __name__ == "__main__":
    main()
