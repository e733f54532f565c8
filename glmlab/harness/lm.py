"""The glmlab model for EleutherAI's lm-evaluation-harness, registered as ``glmlab``.

    import glmlab.harness.lm  # registers the model with lm_eval
    lm_eval.simple_evaluate(model="glmlab", model_args="run_dir=runs/x", tasks=["copa"])

:class:`GLMLabLM` answers the harness's three request types from a run directory's
``weights.pt`` and ``config.yaml`` (:func:`glmlab.harness.loading.load_run`):
``loglikelihood`` (multiple choice, cloze), ``loglikelihood_rolling`` (perplexity: the
text in windows of the model's positions, as lm-eval cuts them) and ``generate_until``
(greedy). How each model family reads a request is :mod:`glmlab.harness.readers`;
contexts longer than the model's window are cut from the left.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from glmlab.harness.loading import LoadedRun, load_run
from glmlab.harness.readers import GLMReader, Reader, reader_for
from glmlab.harness.scoring import Collator, next_token_logits, score_samples

__all__ = ["MODEL_NAME", "GLMLabLM"]

log = logging.getLogger("glmlab")

MODEL_NAME = "glmlab"
DEFAULT_BATCH = 16
DEFAULT_MAX_GEN_TOKS = 256


def _batch_size(value: Any) -> int:
    """lm-eval's ``batch_size`` (an int, its text, None or ``auto``) as a number."""
    if value is None or str(value).startswith("auto"):
        return DEFAULT_BATCH
    size = int(value)
    if size < 1:
        raise ValueError(f"batch_size={value}: must be an integer >= 1")
    return size


@register_model(MODEL_NAME)
class GLMLabLM(LM):
    """A trained glmlab run as an lm-eval model.

    ``run_dir``: the run directory; ``device``: ``auto`` (CUDA when available), ``cpu``,
    ``cuda[:N]``; ``batch_size``: samples per forward; ``mask``: a GLM run's mask token
    (``auto``, ``MASK``, ``sMASK``, ``gMASK``; :mod:`glmlab.harness.readers`);
    ``max_gen_toks``: the default generation length; ``progress``: a bar on a terminal;
    ``loaded``: a run already loaded (:func:`~glmlab.harness.loading.load_run`) instead of
    ``run_dir``. lm-eval's ``batch_size=auto`` means the default, 16.
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        device: str | None = "auto",
        batch_size: int | str | None = DEFAULT_BATCH,
        mask: str = "auto",
        max_gen_toks: int = DEFAULT_MAX_GEN_TOKS,
        progress: bool = True,
        loaded: LoadedRun | None = None,
        max_batch_size: int | None = None,  # lm-eval's automatic batch size: not used
    ) -> None:
        super().__init__()
        if loaded is None:
            if run_dir is None:
                raise ValueError("the glmlab harness model needs run_dir=<a run directory>")
            loaded = load_run(run_dir, device or "auto")
        self.run = loaded
        self._device = loaded.device
        self.batch_size = _batch_size(batch_size)
        self.max_gen_toks = int(max_gen_toks)
        self.progress = str(progress).lower() not in ("false", "0", "no")
        self.seq_len = loaded.spec.data.seq_len
        specials = loaded.tokenizer.specials
        self.reader: Reader = reader_for(loaded.objective, specials, self.seq_len, mask=mask)
        self.collate = Collator(
            mask_builder=loaded.mask_builder,
            pad_id=specials.pad,
            device=loaded.device,
            max_len=self.seq_len,
            prepare_host=loaded.model.attention.prepare_host,
        )
        self.eop = specials.eop
        # Generation never emits a special token, save the [eop] that ends a GLM span.
        ends = isinstance(self.reader, GLMReader)
        self.banned = [i for i in specials.all_ids if not (ends and i == specials.eop)]

    # -- text -> ids ---------------------------------------------------------------------
    def _encode(self, text: str) -> np.ndarray:
        return self.run.tokenizer.encode(text)

    def encode_pair(self, context: str, continuation: str) -> tuple[np.ndarray, np.ndarray]:
        """lm-eval's split of a request into token ids: the context's trailing whitespace
        moves to the continuation, the whole text is encoded once and cut after the
        context's tokens (so merges across the boundary stay as in the whole text)."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = self._encode(context)
        whole = self._encode(context + continuation)
        return context_ids, whole[len(context_ids) :]

    # -- scoring -------------------------------------------------------------------------
    def score_pairs(
        self, pairs: list[tuple[np.ndarray, np.ndarray]], desc: str = "loglikelihood"
    ) -> list[tuple[float, bool]]:
        """Per (context ids, continuation ids): the continuation's log-probability and
        whether greedy decoding produces it, the context cut to fit from the left."""
        samples, owner = [], []
        for i, (context, continuation) in enumerate(pairs):
            if len(continuation) == 0:
                continue
            context = self.reader.fit(context, continuation)
            for s in self.reader.samples(context, continuation):
                samples.append(s)
                owner.append(i)
        logp = np.zeros(len(pairs), np.float64)
        greedy = np.ones(len(pairs), bool)
        if samples:
            sample_logp, sample_greedy = score_samples(
                self.run.model,
                samples,
                self.collate,
                batch_size=self.batch_size,
                progress=self.progress,
                desc=f"harness {desc}",
            )
            np.add.at(logp, owner, sample_logp)
            np.logical_and.at(greedy, owner, sample_greedy)
        return [(float(lp), bool(g)) for lp, g in zip(logp, greedy, strict=True)]

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """``(log p(continuation | context), is greedy)`` per request."""
        pairs = [self.encode_pair(*req.args) for req in requests]
        return self.score_pairs(pairs)

    def rolling_windows(self, text: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``text``'s token windows as lm-eval cuts them (every token scored once, each
        window after the first with one token of context), sized to the model's window."""
        ids = self._encode(text).tolist()
        placeholder = -1  # the first window's prefix: each reader sets its own
        windows = get_rolling_token_windows(
            token_list=ids,
            prefix_token=placeholder,
            max_seq_len=self.reader.budget - 1,
            context_len=1,
        )
        out = []
        for context, continuation in map(make_disjoint_window, windows):
            context = [t for t in context if t != placeholder]
            out.append((np.asarray(context, np.int64), np.asarray(continuation, np.int64)))
        return out

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        """The total log-probability of each request's text (perplexity tasks)."""
        pairs, owner = [], []
        for i, req in enumerate(requests):
            windows = self.rolling_windows(req.args[0])
            pairs += windows
            owner += [i] * len(windows)
        totals = np.zeros(len(requests), np.float64)
        scores = self.score_pairs(pairs, desc="loglikelihood_rolling")
        np.add.at(totals, owner, [lp for lp, _ in scores])
        return [float(t) for t in totals]

    # -- generation ----------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy output per request, ended by [eop] (GLM; after one token at least, as
        ``glmlab infill``), one of the ``until`` strings (cut there), ``max_gen_toks``
        tokens or the model's window."""
        out: list[str] = []
        for a in range(0, len(requests), self.batch_size):
            out += self._generate([req.args for req in requests[a : a + self.batch_size]])
        return out

    def _generate(self, args: list[tuple[str, dict[str, Any]]]) -> list[str]:
        contexts, limits, untils = [], [], []
        for context, kwargs in args:
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            untils.append([until] if isinstance(until, str) else list(until))
            limit = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            if kwargs.get("do_sample"):
                log.warning("glmlab harness model: do_sample ignored, decoding greedily")
            # Room for the output: lm-eval's rule (context cut to window - max_gen_toks),
            # with at least half the window left for the context.
            reserve = max(1, min(limit, (self.seq_len - self.reader.overhead) // 2))
            keep = self.seq_len - self.reader.overhead - reserve
            ids = self._encode(context)
            contexts.append(ids[max(0, len(ids) - keep) :])
            limits.append(limit)
        generated: list[list[int]] = [[] for _ in args]
        texts = ["" for _ in args]
        active = list(range(len(args)))
        while active:
            prompts = [self.reader.prompt(contexts[i], generated[i]) for i in active]
            logits = next_token_logits(self.run.model, prompts, self.collate)
            logits[:, self.banned] = -torch.inf
            first = [k for k, i in enumerate(active) if not generated[i]]
            logits[first, self.eop] = -torch.inf  # no GLM span is empty: one token at least
            picks = logits.argmax(dim=-1).tolist()
            still = []
            for i, token, (sample, _) in zip(active, picks, prompts, strict=True):
                if token == self.eop:
                    continue
                generated[i].append(int(token))
                texts[i] = self.run.tokenizer.decode(generated[i])
                hit = [t for t in untils[i] if t and t in texts[i]]
                if hit:
                    texts[i] = texts[i][: min(texts[i].index(t) for t in hit)]
                    continue
                if len(generated[i]) < limits[i] and len(sample) + 1 <= self.seq_len:
                    still.append(i)
            active = still
        return texts
