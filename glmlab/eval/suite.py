"""The evaluation suite: the same held-out items, scored the same way, for every variant.

Items are built from the validation split chunked the GLM way (whatever the run's
objective), with seeds of their own, so every variant and seed of a sweep sees the same
passages, the same spans and the same scored tokens:

- ``infill_token``: token-level spans (15% of the tokens, Poisson(3) lengths), the NLU proxy;
- ``infill_sentence``: whole sentences (15% of the tokens);
- ``doc_gen``: the last 50% of each passage, the NLG proxy;
- ``cloze``: a span of 2-6 tokens in a passage, ranked against ``k`` distractors of the
  same token length from other passages by the summed log-probability over the span.

Infilling metrics are the mean negative log-likelihood per span token (``*_loss``) and its
exponential (``*_ppl``). Each model family reads an item in its own format
(:class:`ItemFormat`): a GLM model through the training sample builder
(:func:`~glmlab.objective.glm.sample_from_spans`: spans in text order, its own mask tokens and
sentinel setting), an MLM or CLM model as it was trained. docs/EVALUATION.md states the
protocol and why it is fair.

The suite is built by the assembly pass (:func:`glmlab.assembly.build_eval_suite`), which
hands it the passages, the item format, the mask builder and the attention backend's
``prepare_host``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from glmlab.data.batches import PrepareHost, collate_rows
from glmlab.data.examples import ExampleSet
from glmlab.model.glm import GLMModel
from glmlab.objective.glm import GLMObjective, MLMObjective, Objective, sample_from_spans
from glmlab.plugin.registry import get_registry
from glmlab.structures import GLMSample, MaskKind, SpanSet, SpecialTokens, TokenizedText

MIN_PASSAGE_TOKENS = 16  # shorter validation pieces leave no room for spans and context
CLOZE_SPAN_TOKENS = (2, 6)  # inclusive range of the cloze answer's length in tokens


@dataclass(frozen=True)
class InfillTask:
    """One infilling task: a span sampler from the registry and its natural mask token."""

    name: str
    sampler: str
    options: dict[str, Any]
    mask_kind: MaskKind


TASKS: tuple[InfillTask, ...] = (
    InfillTask("infill_token", "token", {"mask_ratio": 0.15, "poisson_lambda": 3.0}, "MASK"),
    InfillTask("infill_sentence", "sentence", {"mask_ratio": 0.15}, "sMASK"),
    InfillTask("doc_gen", "document_suffix", {"min_ratio": 0.5, "max_ratio": 0.5}, "gMASK"),
)


class _AfterFirstToken:
    """Wraps a span sampler so that no span covers a passage's first token: a
    left-to-right model then has context for every scored token."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def sample(self, text: TokenizedText, *, max_len: int, rng: np.random.Generator) -> SpanSet:
        ends = text.sentence_ends - 1
        rest = TokenizedText(text.ids[1:], ends[ends > 0])
        spans = self.inner.sample(rest, max_len=max_len - 1, rng=rng)
        shifted = tuple((s + 1, e + 1) for s, e in spans.spans)
        return dataclasses.replace(spans, spans=shifted, keep=spans.keep + 1)


class ItemFormat(Protocol):
    """How a model family reads an item: the passage and its spans become one sample whose
    loss mask marks the scored targets. ``cloze`` selects the multiple-choice score."""

    def sample(self, ids: np.ndarray, spans: SpanSet, *, cloze: bool) -> GLMSample: ...


class GLMFormat:
    """A GLM model's reading: the training sample builder (mask tokens, sentinels, 2D
    positions), spans in text order. Infilling scores the span tokens; the cloze score adds
    each span's [eop] (GLM's multi-token cloze rule)."""

    def __init__(self, objective: GLMObjective, *, max_len: int) -> None:
        self.specials = objective.specials
        self.sentinels = objective.sentinels
        self.sentinel_position = objective.sentinel_position
        # Each task uses the mask token the model was trained with for that span kind.
        self.trained_kinds = {s.mask_kind for _, s, _ in objective.samplers}
        self.max_len = max_len

    def mask_kind(self, natural: MaskKind) -> MaskKind:
        """``natural`` if the model was trained with it, else [MASK] if it was, else the
        first (alphabetically) mask token it knows."""
        if natural in self.trained_kinds:
            return natural
        return "MASK" if "MASK" in self.trained_kinds else min(self.trained_kinds)

    def build(self, ids: np.ndarray, spans: SpanSet) -> GLMSample:
        """``ids`` with ``spans`` laid out exactly as in training, without shuffling."""
        if spans.glm_length() > self.max_len:
            raise ValueError(
                f"{spans.glm_length()} tokens with Part B exceed the model's {self.max_len}"
            )
        return sample_from_spans(
            ids,
            spans,
            self.specials,
            sentinels=self.sentinels,
            sentinel_position=self.sentinel_position,
        )

    def sample(self, ids: np.ndarray, spans: SpanSet, *, cloze: bool) -> GLMSample:
        s = self.build(ids, dataclasses.replace(spans, mask_kind=self.mask_kind(spans.mask_kind)))
        if cloze:
            return s
        content = s.loss_mask * (s.target_ids != self.specials.eop)
        return dataclasses.replace(s, loss_mask=content.astype(np.float32))


class MLMFormat:
    """A BERT model's reading: every span token becomes [MASK] (the span lengths are
    therefore given away), the whole passage is visible, each masked token is scored on
    its own."""

    def __init__(self, specials: SpecialTokens) -> None:
        self.mask_id = specials.mask

    def sample(self, ids: np.ndarray, spans: SpanSet, *, cloze: bool) -> GLMSample:
        ids = ids[: spans.keep]
        n = ids.shape[0]
        inputs = ids.copy()
        scored = np.zeros(n, np.float32)
        for s, e in spans.spans:
            inputs[s:e] = self.mask_id
            scored[s:e] = 1.0
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(inputs, positions, ids.copy(), scored, sep=n)


class CLMFormat:
    """A GPT model's reading: the uncorrupted passage left to right. Infilling scores the
    span tokens given everything before them; the cloze score adds every token after the
    answer, the only way a left-to-right model can use the right context."""

    def sample(self, ids: np.ndarray, spans: SpanSet, *, cloze: bool) -> GLMSample:
        ids = ids[: spans.keep]
        n = ids.shape[0] - 1
        scored = np.zeros(n, np.float32)  # position i predicts token i + 1
        for s, e in spans.spans:
            if s < 1:
                raise ValueError("a left-to-right model cannot score a span at token 0")
            scored[s - 1 : (n if cloze else e - 1)] = 1.0
        positions = np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
        return GLMSample(ids[:-1].copy(), positions, ids[1:].copy(), scored, sep=0)


@dataclass(frozen=True)
class ClozeItem:
    """A passage, the answer's span in it and the candidates; ``candidates[0]`` is true."""

    ids: np.ndarray
    span: tuple[int, int]
    candidates: tuple[np.ndarray, ...]


def passages(validation: ExampleSet, n: int) -> list[TokenizedText]:
    """The first ``n`` validation pieces of at least :data:`MIN_PASSAGE_TOKENS` tokens."""
    out: list[TokenizedText] = []
    for p in range(validation.n_pieces):
        piece = validation.piece(p)
        if len(piece) >= MIN_PASSAGE_TOKENS:
            out.append(piece)
            if len(out) == n:
                break
    if not out:
        raise ValueError(
            f"the validation split has no passage of {MIN_PASSAGE_TOKENS}+ tokens to evaluate on"
        )
    return out


def infill_items(
    texts: Sequence[TokenizedText], task: InfillTask, *, seq_len: int, seed: int
) -> list[tuple[np.ndarray, SpanSet]]:
    """The spans of ``task`` in each passage, from the registry's sampler (fixed seeds)."""
    options = {**task.options, "mask_kind": task.mask_kind}
    sampler = _AfterFirstToken(get_registry().create("span_sampler", task.sampler, **options))
    stream = zlib.crc32(task.name.encode())  # one random stream per task, stable across runs
    items = []
    for i, text in enumerate(texts):
        rng = np.random.default_rng((seed, stream, i))
        items.append((text.ids, sampler.sample(text, max_len=seq_len, rng=rng)))
    return items


def cloze_items(
    texts: Sequence[TokenizedText], *, n_items: int, n_distractors: int, seq_len: int, seed: int
) -> list[ClozeItem]:
    """``n_items`` cloze items over ``texts`` (cycled): the answer is a random span of
    :data:`CLOZE_SPAN_TOKENS` tokens after the first token; the distractors are distinct
    spans of the same length from other passages, none equal to the answer."""
    lo, hi = CLOZE_SPAN_TOKENS
    items = []
    for j in range(n_items):
        rng = np.random.default_rng((seed, zlib.crc32(b"cloze"), j))
        p = j % len(texts)
        ids = texts[p].ids[: seq_len - 2]  # Part B adds [sop] and [eop]
        length = int(rng.integers(lo, min(hi, ids.shape[0] - 2) + 1))
        start = int(rng.integers(1, ids.shape[0] - length + 1))
        truth = ids[start : start + length]
        pool = [q for q in range(len(texts)) if q != p and len(texts[q]) >= length]
        candidates = [truth]
        for _ in range(100 * n_distractors):
            if len(candidates) == n_distractors + 1 or not pool:
                break
            other = texts[pool[int(rng.integers(len(pool)))]].ids
            at = int(rng.integers(0, other.shape[0] - length + 1))
            cand = other[at : at + length]
            if not any(np.array_equal(cand, c) for c in candidates):
                candidates.append(cand)
        if len(candidates) < n_distractors + 1:
            raise ValueError(f"cloze item {j}: found too few distinct distractors")
        items.append(ClozeItem(ids, (start, start + length), tuple(candidates)))
    return items


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    # The trainer's policy: bf16 on CUDA, exact fp32 on the CPU.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def score_samples(
    model: GLMModel,
    samples: Sequence[GLMSample],
    *,
    mask_builder: object,
    seq_len: int,
    pad_id: int,
    device: torch.device,
    batch_size: int,
    prepare_host: PrepareHost | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the summed log-probability of its scored targets, and their count.
    ``prepare_host``: the model's attention backend's, run on each batch as in training."""
    sums, counts = [], []
    for a in range(0, len(samples), batch_size):
        chunk = samples[a : a + batch_size]
        batch = collate_rows(
            [[s] for s in chunk],
            seq_len=seq_len,
            pad_id=pad_id,
            mask_builder=mask_builder,
            prepare_host=prepare_host,
        ).to(device)
        with _autocast(device):
            hidden = model(batch.input_ids, batch.position_ids, batch.layout)
        where = batch.loss_positions
        logits = model.logits(hidden.reshape(-1, hidden.shape[-1])[where]).float()
        logp = -F.cross_entropy(logits, batch.target_ids.reshape(-1)[where], reduction="none")
        weight = batch.loss_mask.reshape(-1)[where].float()
        rows = torch.div(where, seq_len, rounding_mode="floor")
        zeros = torch.zeros(len(chunk), device=device)
        sums.append(zeros.index_add(0, rows, logp * weight).cpu())
        counts.append(zeros.index_add(0, rows, weight).cpu())
    return torch.cat(sums).double().numpy(), torch.cat(counts).double().numpy()


def cloze_credit(scores: np.ndarray) -> float:
    """1 if ``scores[0]`` (the true answer) is the unique maximum, 1/t if it ties with
    t - 1 others for the maximum, else 0."""
    best = scores.max()
    if scores[0] < best:
        return 0.0
    return 1.0 / float((scores == best).sum())


def item_format(objective: Objective, *, max_len: int) -> ItemFormat:
    """The format in which the model trained with ``objective`` reads the suite's items."""
    if isinstance(objective, GLMObjective):
        return GLMFormat(objective, max_len=max_len)
    if isinstance(objective, MLMObjective):
        return MLMFormat(objective.specials)
    return CLMFormat()


@dataclass(frozen=True)
class SuiteSettings:
    """The suite's size and seeds (``train.eval_suite_*``, ``train.cloze_*``) and the run's
    row shape."""

    items: int
    cloze_items: int
    cloze_distractors: int
    seed: int
    seq_len: int
    batch_size: int


class EvalSuite:
    """The suite for one run: fixed items (see the module docstring) over the passages of
    ``examples`` (the validation split chunked the GLM way), read in ``item_format``.
    :meth:`run` scores a model on them, in batches built with ``mask_builder`` and the
    model's attention backend's ``prepare_host``."""

    def __init__(
        self,
        examples: ExampleSet,
        item_format: ItemFormat,
        settings: SuiteSettings,
        *,
        mask_builder: object,
        pad_id: int,
        device: torch.device,
        prepare_host: PrepareHost | None = None,
    ) -> None:
        self.format = item_format
        self.settings = settings
        self.mask_builder = mask_builder
        self.pad_id = pad_id
        self.device = device
        self.prepare_host = prepare_host
        texts = passages(examples, max(settings.items, settings.cloze_items))
        self.infill = {
            task.name: infill_items(
                texts[: settings.items], task, seq_len=settings.seq_len, seed=settings.seed
            )
            for task in TASKS
        }
        self.cloze = cloze_items(
            texts,
            n_items=settings.cloze_items,
            n_distractors=settings.cloze_distractors,
            seq_len=settings.seq_len,
            seed=settings.seed,
        )

    def _score(self, model: GLMModel, samples: Sequence[GLMSample]) -> tuple[np.ndarray, ...]:
        return score_samples(
            model,
            samples,
            mask_builder=self.mask_builder,
            seq_len=self.settings.seq_len,
            pad_id=self.pad_id,
            device=self.device,
            batch_size=self.settings.batch_size,
            prepare_host=self.prepare_host,
        )

    def run(self, model: GLMModel) -> dict[str, float]:
        """Every task's metrics for ``model`` (put in eval mode for the duration)."""
        return metrics_from_items(self.score_items(model))

    def score_items(self, model: GLMModel, *, progress: bool = False) -> ItemScores:
        """Every task's per-item scores for ``model`` (see :data:`ItemScores`); ``progress``:
        a bar over the tasks on a terminal."""
        was_training = model.training
        model.eval()
        bar = tqdm(
            total=len(self.infill) + 1,
            desc="evaluate",
            unit="task",
            leave=True,
            disable=not (progress and sys.stderr.isatty()),
        )
        try:
            out: ItemScores = {}
            for name, items in self.infill.items():
                bar.update(1)
                samples = [self.format.sample(ids, spans, cloze=False) for ids, spans in items]
                logp, n = self._score(model, samples)
                out[name] = {"logp": logp.tolist(), "n": n.tolist()}
            samples = []
            for item in self.cloze:
                s, e = item.span
                for cand in item.candidates:
                    ids = np.concatenate([item.ids[:s], cand, item.ids[e:]])
                    spans = SpanSet(((s, e),), ids.shape[0], "MASK")
                    samples.append(self.format.sample(ids, spans, cloze=True))
            logp, _ = self._score(model, samples)
            out["cloze"] = {"credit": self._cloze_credits(logp)}
            bar.update(1)
            return out
        finally:
            bar.close()
            model.train(was_training)

    def _cloze_credits(self, candidate_scores: np.ndarray) -> list[float]:
        per_item = np.split(
            candidate_scores, np.cumsum([len(i.candidates) for i in self.cloze])[:-1]
        )
        return [cloze_credit(s) for s in per_item]

    def unigram_items(self, log_probs: np.ndarray) -> ItemScores:
        """The per-item scores of a unigram model with token log-probabilities
        ``log_probs``: infilling scores the same span tokens; cloze ranks the candidates
        by their summed log-probability."""
        out: ItemScores = {}
        for name, items in self.infill.items():
            logp = [float(sum(log_probs[ids[s:e]].sum() for s, e in sp.spans)) for ids, sp in items]
            n = [float(sum(e - s for s, e in sp.spans)) for _, sp in items]
            out[name] = {"logp": logp, "n": n}
        scores = np.asarray(
            [log_probs[c].sum() for item in self.cloze for c in item.candidates], dtype=np.float64
        )
        out["cloze"] = {"credit": self._cloze_credits(scores)}
        return out

    def chance_items(self) -> ItemScores:
        """Cloze credit expected from a uniform guess: 1 / (number of candidates)."""
        return {"cloze": {"credit": [1.0 / len(i.candidates) for i in self.cloze]}}


# -- per-item scores and reference levels -----------------------------------------------

# Per task, per item: ``{"logp": [...], "n": [...]}`` (summed log-probability of the
# scored tokens and their count) for infilling tasks, ``{"credit": [...]}`` for cloze.
ItemScores = dict[str, dict[str, list[float]]]


def item_fractions(task: str, scores: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """A task's metric as a ratio of per-item sums, ``sum(num) / sum(den)``: an infilling
    loss is (−log p summed over tokens) / tokens, cloze accuracy is credit / items."""
    if "credit" in scores:
        credit = np.asarray(scores["credit"], dtype=np.float64)
        return credit, np.ones_like(credit)
    return -np.asarray(scores["logp"], dtype=np.float64), np.asarray(scores["n"], dtype=np.float64)


def task_metric(task: str) -> str:
    """The metric name a task's per-item scores aggregate to."""
    return "cloze_acc" if task == "cloze" else f"{task}_loss"


def metrics_from_items(items: ItemScores) -> dict[str, float]:
    """The suite's metrics from per-item scores (losses also as perplexities)."""
    out: dict[str, float] = {}
    for task, scores in items.items():
        num, den = item_fractions(task, scores)
        value = float(num.sum() / max(den.sum(), 1.0))
        out[task_metric(task)] = value
        if task != "cloze":
            out[f"{task}_ppl"] = math.exp(min(value, 700.0))  # exp overflows past ~709
    return out


def unigram_log_probs(train_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Log-probabilities of a unigram model fitted to ``train_ids`` (add-one smoothed
    over the ``vocab_size`` token ids)."""
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size)
    counts = counts[:vocab_size].astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


def reference_items(
    suite: EvalSuite, train_ids: np.ndarray, vocab_size: int, untrained: GLMModel
) -> dict[str, ItemScores]:
    """The per-item scores of the trivial references a trained model must beat: ``chance``
    (cloze), ``unigram`` (the token frequencies of ``train_ids``, the train split, over
    ``vocab_size`` ids) and ``random_init`` (the run's model before training)."""
    log_probs = unigram_log_probs(train_ids, vocab_size)
    return {
        "chance": suite.chance_items(),
        "unigram": suite.unigram_items(log_probs),
        "random_init": suite.score_items(untrained),
    }
