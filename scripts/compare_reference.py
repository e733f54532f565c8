"""Run THUDM/GLM's ``ConstructBlockStrategy`` unmodified on glmlab's tokenised stdlib_docs and
print its statistics next to glmlab's (the same documents, the same packed rows).

Usage (the reference is not vendored; bring its file and stub its two helpers)::

    mkdir -p /tmp/ref/mpu && cd /tmp/ref
    git show <THUDM/GLM commit>:blocklm_utils.py > blocklm_utils.py
    printf 'def get_data_parallel_rank():\n    return 0\ndef get_data_parallel_world_size():\n    return 1\n' > mpu/__init__.py
    printf 'def print_rank_0(*a, **k):\n    pass\n' > utils.py
    python scripts/compare_reference.py /tmp/ref
"""

import sys
import types

import numpy as np

np.long = np.int64  # the reference predates numpy 1.24; its file stays unmodified
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")
from blocklm_utils import ConstructBlockStrategy  # noqa: E402

from glmlab.data.corpus import load_corpus  # noqa: E402
from glmlab.data.tokenizer import load_or_train  # noqa: E402
from glmlab.objective.fidelity import (  # noqa: E402
    document_stats,
    draw_token,
    sentence_stats,
    stdlib_documents,
    stdlib_rows,
    token_stats,
)

corpus = load_corpus("stdlib_docs", min_chars=200, validation_fraction=0.05)
tok = load_or_train(corpus, vocab_size=4096, n_sentinels=100)
sp = tok.specials
V = tok.vocab_size
ids = {
    "ENC": V,
    "eos": V + 1,
    "dBLOCK": V + 2,
    "MASK": sp.mask,
    "sMASK": sp.smask,
    "gMASK": sp.gmask,
    "sop": sp.sop,
    "eop": sp.eop,
}
for i in range(1, 100):
    ids[f"MASK{i}"] = sp.sentinel_masks[i]
    ids[f"sop{i}"] = sp.sentinel_sops[i]


class Tok:
    def get_command(self, name):
        return types.SimpleNamespace(Id=ids[name])

    def IdToToken(self, i):
        return tok.decode([int(i)]) if i < V else "[special]"

    def DecodeIds(self, x):
        return tok.decode([int(i) for i in x if i < V])


def strategy(**kw):
    args = types.SimpleNamespace(eod_token=ids["eos"])
    return ConstructBlockStrategy(args, Tok(), 512, **kw)


def parts(out, b):
    """Sample ``b``'s spans from the reference's output: their lengths and mask positions."""
    sep = int(out["attention_mask"][b])
    tgt = out["target"][b].numpy()
    pos = out["position_id"][b].numpy()
    lm = out["loss_mask"][b].numpy()
    end = int(np.flatnonzero(lm)[-1]) + 1
    lengths, starts, first = [], [], sep
    for j in range(sep, end):
        if tgt[j] == sp.eop:
            lengths.append(j - first)
            starts.append(pos[0, first])
            first = j + 1
    return lengths, starts


docs = stdlib_documents(4096)
print(f"{len(docs)} documents of 128-512 tokens")
# ---- token level
s = strategy(bert_prob=1.0)
L, right, frac, nspans = [], [], [], []
for d in docs:
    for _ in range(8):
        text = np.concatenate([[ids["ENC"]], d.ids, [ids["eos"]]])
        out = s.construct_blocks([{"text": text.copy(), "loss_mask": np.ones(len(text), np.int64)}])
        if len(out["text"]) == 0:
            continue
        lengths, starts = parts(out, 0)
        L += lengths
        right.append(lengths[int(np.argmax(starts))])
        frac.append(sum(lengths) / len(d))
        nspans.append(len(lengths))
L = np.array(L)
print(
    "reference token:",
    dict(
        spans_per_sample=np.mean(nspans),
        span_length_mean=L.mean(),
        length_one_share=(L == 1).mean(),
        rightmost=np.mean(right),
        masked=np.mean(frac),
        sd=np.std(frac),
    ),
)
print("glmlab token:   ", token_stats(draw_token(docs, 8)))
# ---- sentence level on the rows glmlab packs (448 text tokens), as one reference sequence each
rows = stdlib_rows(4096, chunk_len=448)
s = strategy(bert_prob=0.0, gap_sentence_prob=1.0)
fr = []
for row in rows:
    text = np.concatenate([[ids["ENC"]]] + [np.append(p.ids, ids["eos"]) for p in row])
    out = s.construct_blocks([{"text": text.copy(), "loss_mask": np.ones(len(text), np.int64)}])
    lengths, _ = parts(out, 0)
    fr.append(sum(lengths) / sum(len(p) for p in row))
print("reference sentence masked fraction (rows):", np.mean(fr))
print("glmlab sentence:", sentence_stats(rows, 512))
# ---- document level, one text per batch
s = strategy(bert_prob=0.0, gap_sentence_prob=0.0)
fr, at_end = [], []
for d in docs:
    for _ in range(4):
        text = np.concatenate([[ids["ENC"]], d.ids, [ids["eos"]]])
        out = s.construct_blocks([{"text": text.copy(), "loss_mask": np.ones(len(text), np.int64)}])
        sep = int(out["attention_mask"][0])
        lm = out["loss_mask"][0].numpy()
        n_loss = int(lm.sum())
        tgt = out["target"][0].numpy()
        suffix = sp.eop not in tgt[sep:].tolist()
        masked = n_loss - (0 if suffix else 1)
        fr.append(masked / len(text))
        at_end.append(suffix)
print("reference document: masked", np.mean(fr), "suffix share", np.mean(at_end))
print("glmlab document:", document_stats(docs, 1, draws=4))
