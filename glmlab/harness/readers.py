"""How each model family reads a harness request (docs/HARNESS.md states the protocol).

A request is a context and a continuation, both token ids. Every family scores the
continuation through the model's one loss path (:meth:`GLMModel.token_scores`), each in
its own natural formulation:

- **GLM** (:class:`GLMReader`): Part A is the context with one mask where the answer goes
  (at the end: ``[gMASK]`` if the run trained it, else ``[MASK]``, else the mask token it
  trained), Part B is ``[sop]`` and the continuation, scored token by token
  autoregressively; the span's closing ``[eop]`` is not scored (the continuation is how
  the text goes on, not necessarily all of it), as the suite's infilling scores spans.
- **CLM** (:class:`CLMReader`): the context then the continuation, left to right. A CLM
  run never saw a start token, so an empty context is replaced by ``[eop]`` (an id its
  training never fed in: the first token is predicted from nothing the model knows).
- **MLM** (:class:`MLMReader`): pseudo-log-likelihood (Salazar et al., 2020): each
  continuation token is replaced by ``[MASK]`` on its own, with the context and the rest
  of the continuation visible, and scored there; one sample per continuation token.

Each reader says how many context + continuation tokens one sample holds (``budget``);
longer contexts are cut from the left (:meth:`fit`). For generation, :meth:`prompt` lays
out the context and what was generated so far and names the position whose logits
predict the next token.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from glmlab.eval.formats import GLMFormat
from glmlab.objective.base import Objective
from glmlab.objective.glm import GLMObjective
from glmlab.structures import GLMSample, SpanSet, SpecialTokens

__all__ = ["MASK_CHOICES", "CLMReader", "GLMReader", "MLMReader", "Reader", "reader_for"]

MASK_CHOICES = ("auto", "MASK", "sMASK", "gMASK")


def _ids(*parts: np.ndarray | list[int]) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])


def _linear_positions(n: int) -> np.ndarray:
    return np.stack([np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])


class Reader(Protocol):
    """How one model family lays out a request (module docstring)."""

    budget: int  # context + continuation tokens one sample holds
    min_context: int  # context tokens a sample needs (CLM: 1, for its [eop] prefix)
    overhead: int  # tokens a generation prompt adds to the context and the output

    def fit(self, context: np.ndarray, continuation: np.ndarray) -> np.ndarray: ...

    def samples(self, context: np.ndarray, continuation: np.ndarray) -> list[GLMSample]: ...

    def prompt(self, context: np.ndarray, generated: list[int]) -> tuple[GLMSample, int]: ...


class _Fitting:
    budget: int
    min_context = 0

    def _prefix(self, context: np.ndarray) -> np.ndarray:
        return context

    def fit(self, context: np.ndarray, continuation: np.ndarray) -> np.ndarray:
        """``context`` cut from the left so that one sample holds it and ``continuation``;
        a continuation that leaves no room is a one-line error."""
        room = self.budget - len(continuation)
        if room < self.min_context:
            raise ValueError(
                f"a continuation of {len(continuation)} tokens does not fit the model's "
                f"window (at most {self.budget - self.min_context} tokens)"
            )
        context = self._prefix(np.asarray(context, dtype=np.int64))
        return context[len(context) - room :] if len(context) > room else context


class GLMReader(_Fitting):
    """A GLM run: the context in Part A with a mask at its end, the continuation as Part B."""

    overhead = 2  # the mask in Part A and [sop]

    def __init__(self, objective: GLMObjective, seq_len: int, mask: str = "auto") -> None:
        if mask not in MASK_CHOICES:
            raise ValueError(f"mask={mask}: must be one of {', '.join(MASK_CHOICES)}")
        self.format = GLMFormat(objective, max_len=seq_len)
        self.kind = self.format.mask_kind("gMASK") if mask == "auto" else mask
        self.eop = objective.specials.eop
        self.budget = seq_len - self.overhead

    def samples(self, context: np.ndarray, continuation: np.ndarray) -> list[GLMSample]:
        ids = _ids(context, continuation)
        s = self.format.build(ids, SpanSet(((len(context), len(ids)),), len(ids), self.kind))
        scored = np.zeros(len(s), np.float32)
        scored[s.sep : s.sep + len(continuation)] = 1.0  # [sop] x1 .. x(n-1) predict x1 .. xn
        return [dataclasses.replace(s, loss_mask=scored)]

    def prompt(self, context: np.ndarray, generated: list[int]) -> tuple[GLMSample, int]:
        # The span holds the output and a closing [eop] that no input reaches (eop=False
        # drops the last input): Part B is [sop] + the output, the last position predicts.
        ids = _ids(context, generated, [self.eop])
        spans = SpanSet(((len(context), len(ids)),), len(ids), self.kind, eop=False)
        s = self.format.build(ids, spans)
        return s, s.sep + len(generated)


class CLMReader(_Fitting):
    """A left-to-right run: the context then the continuation."""

    min_context = 1
    overhead = 0

    def __init__(self, specials: SpecialTokens, seq_len: int) -> None:
        self.start = specials.eop  # stands in for an empty context (module docstring)
        self.budget = seq_len + 1  # inputs are all tokens but the last

    def _prefix(self, context: np.ndarray) -> np.ndarray:
        return context if len(context) else np.asarray([self.start], dtype=np.int64)

    def samples(self, context: np.ndarray, continuation: np.ndarray) -> list[GLMSample]:
        context = self._prefix(context)
        ids = _ids(context, continuation)
        n = len(ids) - 1
        scored = np.zeros(n, np.float32)
        scored[len(context) - 1 :] = 1.0  # input i predicts token i + 1
        return [GLMSample(ids[:-1].copy(), _linear_positions(n), ids[1:].copy(), scored, sep=0)]

    def prompt(self, context: np.ndarray, generated: list[int]) -> tuple[GLMSample, int]:
        ids = _ids(self._prefix(context), generated)
        n = len(ids)
        return GLMSample(ids, _linear_positions(n), ids.copy(), np.zeros(n, np.float32), 0), n - 1


class MLMReader(_Fitting):
    """A masked-LM run: pseudo-log-likelihood, one masked continuation token per sample."""

    overhead = 1  # the [MASK] a prompt ends with

    def __init__(self, specials: SpecialTokens, seq_len: int) -> None:
        self.mask = specials.mask
        self.budget = seq_len

    def samples(self, context: np.ndarray, continuation: np.ndarray) -> list[GLMSample]:
        ids = _ids(context, continuation)
        n = len(ids)
        out = []
        for i in range(len(context), n):
            inputs = ids.copy()
            inputs[i] = self.mask
            scored = np.zeros(n, np.float32)
            scored[i] = 1.0
            out.append(GLMSample(inputs, _linear_positions(n), ids.copy(), scored, sep=n))
        return out

    def prompt(self, context: np.ndarray, generated: list[int]) -> tuple[GLMSample, int]:
        ids = _ids(context, generated, [self.mask])
        n = len(ids)
        return GLMSample(ids, _linear_positions(n), ids.copy(), np.zeros(n, np.float32), n), n - 1


def reader_for(
    objective: Objective, specials: SpecialTokens, seq_len: int, *, mask: str = "auto"
) -> Reader:
    """The reader of the family ``objective`` trains (its ``item_format``); ``specials``:
    the run's tokenizer's special tokens; ``mask``: a GLM run's mask token (auto: module
    docstring)."""
    family = getattr(objective, "item_format", None)
    if family == "glm" and isinstance(objective, GLMObjective):
        return GLMReader(objective, seq_len, mask)
    if family == "clm":
        return CLMReader(specials, seq_len)
    if family == "mlm":
        return MLMReader(specials, seq_len)
    raise ValueError(
        f"{type(objective).__name__} (item_format {family!r}) has no harness reader; "
        "glm, clm and mlm runs have"
    )
