"""The evaluation suite: the same held-out items, scored the same way, for every variant.

Items are built from the test split chunked the GLM way (whatever the run's
objective), with seeds of their own, so every variant and seed of a sweep sees the same
passages, the same spans and the same scored tokens:

- ``infill_token``: token-level spans (15% of the tokens, Poisson(3) lengths), the NLU proxy;
- ``infill_sentence``: whole sentences (15% of the tokens);
- ``doc_gen``: the last 50% of each passage, the NLG proxy;
- ``infill_single``: one of ``infill_token``'s spans per passage: no Part B order exists,
  so it favours no span order a model was trained with;
- ``infill_shuffled``: ``infill_token``'s items with Part B in random orders (their
  log-probabilities averaged), the counterpart of text order (docs/EVALUATION.md);
- ``cloze``: a span of 2-6 tokens in a passage, ranked against ``k`` distractors of the
  same token length from other passages by the summed log-probability over the span;
- ``classify``: closed-class words as classes, chosen by blank infilling
  (:mod:`glmlab.eval.classify`), the understanding-style task.

Infilling metrics are the mean negative log-likelihood per span token (``*_loss``) and its
exponential (``*_ppl``). The items are :mod:`glmlab.eval.items`, the metrics
:mod:`glmlab.eval.metrics`; this module scores them (:class:`EvalSuite`). Each model family
reads an item in the format its objective names (:mod:`glmlab.eval.formats`): a GLM model through the training sample builder
(:func:`~glmlab.objective.sample.sample_from_spans`: spans in text order, its own mask tokens and
sentinel setting), an MLM or CLM model as it was trained. docs/EVALUATION.md states the
protocol and why it is fair.

The suite is built by the assembly pass (:func:`glmlab.assembly.build_eval_suite`), which
hands it the passages, the item format, the mask builder and the attention backend's
``prepare_host``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from glmlab.data.examples import ExampleSet
from glmlab.eval.classify import classify_items
from glmlab.eval.formats import ItemFormat
from glmlab.eval.items import (
    TASKS,
    ClozeItem,
    cloze_items,
    infill_items,
    passages,
    random_orders,
    single_span_items,
)
from glmlab.eval.metrics import ItemScores, cloze_credit, metrics_from_items, unigram_log_probs
from glmlab.model.glm import GLMModel
from glmlab.objective.batches import PrepareHost, collate_rows
from glmlab.structures import GLMSample, SpanSet

__all__ = [
    "EvalSuite",
    "SuiteSettings",
    "reference_items",
    "score_samples",
]


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
    sums, counts = [torch.zeros(0)], [torch.zeros(0)]
    for a in range(0, len(samples), batch_size):
        chunk = samples[a : a + batch_size]
        batch = collate_rows(
            [[s] for s in chunk],
            seq_len=seq_len,
            pad_id=pad_id,
            mask_builder=mask_builder,
            prepare_host=prepare_host,
        ).to(device)
        with _autocast(device):  # the model's own loss path, per token (GLMModel.token_losses)
            losses, weight = model.token_losses(batch)
        logp = -losses
        rows = torch.div(batch.loss_positions, seq_len, rounding_mode="floor")
        zeros = torch.zeros(len(chunk), device=device)
        sums.append(zeros.index_add(0, rows, logp * weight).cpu())
        counts.append(zeros.index_add(0, rows, weight).cpu())
    return torch.cat(sums).double().numpy(), torch.cat(counts).double().numpy()


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
    classify_items: int = 256


class EvalSuite:
    """The suite for one run: fixed items (see the module docstring) over the passages of
    ``examples`` (the test split chunked the GLM way), read in ``item_format``.
    :meth:`run` scores a model on them, in batches built with ``mask_builder`` and the
    model's attention backend's ``prepare_host``. ``label_sets``: the classification
    task's classes as token ids (:func:`glmlab.eval.classify.label_sets`); none: no task."""

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
        label_sets: Sequence[tuple[int, ...]] = (),
    ) -> None:
        self.format = item_format
        self.settings = settings
        self.mask_builder = mask_builder
        self.pad_id = pad_id
        self.device = device
        self.prepare_host = prepare_host
        texts = passages(
            examples, max(settings.items, settings.cloze_items, settings.classify_items)
        )
        self.infill = {
            task.name: infill_items(
                texts[: settings.items], task, seq_len=settings.seq_len, seed=settings.seed
            )
            for task in TASKS
        }
        token = self.infill["infill_token"]
        self.infill["infill_single"] = single_span_items(token, seed=settings.seed)
        self.orders = random_orders(token, seed=settings.seed)  # infill_shuffled's
        self.choices: dict[str, list[ClozeItem]] = {
            "cloze": cloze_items(
                texts,
                n_items=settings.cloze_items,
                n_distractors=settings.cloze_distractors,
                seq_len=settings.seq_len,
                seed=settings.seed,
            )
        }
        classify = classify_items(
            texts,
            label_sets,
            n_items=settings.classify_items,
            seq_len=settings.seq_len,
            seed=settings.seed,
        )
        if classify:  # none where no label set is one token each, or no passage has its words
            self.choices["classify"] = classify

    @property
    def cloze(self) -> list[ClozeItem]:
        """The cloze items."""
        return self.choices["cloze"]

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
            total=len(self.infill) + 1 + len(self.choices),
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
            out["infill_shuffled"] = self._shuffled(model, out["infill_token"])
            bar.update(1)
            for name, items in self.choices.items():
                if name == "cloze":
                    samples = [self.format.sample(*pair, cloze=True) for pair in _filled(items)]
                else:
                    samples = [self.format.choice(*pair) for pair in _filled(items)]
                logp, _ = self._score(model, samples)
                out[name] = {"credit": self._credits(name, logp)}
                bar.update(1)
            return out
        finally:
            bar.close()
            model.train(was_training)

    def _shuffled(self, model: GLMModel, text_order: dict[str, list[float]]) -> dict:
        """``infill_shuffled``: each ``infill_token`` item with Part B in each of its random
        orders, the summed log-probability averaged over the orders. A format without a
        Part B (``orders_matter`` false: MLM, CLM) scores the same as in text order."""
        if not getattr(self.format, "orders_matter", False):
            return {k: list(v) for k, v in text_order.items()}
        items = self.infill["infill_token"]
        samples = [
            self.format.sample(ids, spans, cloze=False, order=order)
            for (ids, spans), orders in zip(items, self.orders, strict=True)
            for order in orders
        ]
        logp, n = self._score(model, samples)
        k = len(self.orders[0]) if self.orders else 1
        return {
            "logp": logp.reshape(-1, k).mean(1).tolist(),
            "n": n.reshape(-1, k)[:, 0].tolist(),
        }

    def _credits(self, name: str, candidate_scores: np.ndarray) -> list[float]:
        items = self.choices[name]
        per_item = np.split(candidate_scores, np.cumsum([len(i.candidates) for i in items])[:-1])
        return [cloze_credit(s) for s in per_item]

    def unigram_items(self, log_probs: np.ndarray) -> ItemScores:
        """The per-item scores of a unigram model with token log-probabilities
        ``log_probs``: infilling scores the same span tokens (in any order); cloze and
        classification rank the candidates by their summed log-probability."""
        out: ItemScores = {}
        for name, items in self.infill.items():
            logp = [float(sum(log_probs[ids[s:e]].sum() for s, e in sp.spans)) for ids, sp in items]
            n = [float(sum(e - s for s, e in sp.spans)) for _, sp in items]
            out[name] = {"logp": logp, "n": n}
        out["infill_shuffled"] = dict(out["infill_token"])
        for name, items in self.choices.items():
            scores = [log_probs[c].sum() for item in items for c in item.candidates]
            out[name] = {"credit": self._credits(name, np.asarray(scores, dtype=np.float64))}
        return out

    def chance_items(self) -> ItemScores:
        """Multiple-choice credit expected from a uniform guess: 1 / (number of candidates)."""
        return {
            name: {"credit": [1.0 / len(i.candidates) for i in items]}
            for name, items in self.choices.items()
        }


def _filled(items: Sequence[ClozeItem]) -> list[tuple[np.ndarray, SpanSet]]:
    """Every candidate of every item put in its blank: (passage, its one span), in order."""
    out = []
    for item in items:
        s, e = item.span
        for cand in item.candidates:
            ids = np.concatenate([item.ids[:s], cand, item.ids[e:]])
            out.append((ids, SpanSet(((s, s + len(cand)),), ids.shape[0], "MASK")))
    return out


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
