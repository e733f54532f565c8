"""``glmlab infill --checkpoint RUN_DIR|FILE.pt --text "..."``: fill a text's blanks with a trained GLM.

Blanks are written ``[MASK]`` (or ``[sMASK]`` / ``[gMASK]``, one kind per text). Each
generation step lays the text out through the training sample builder (the evaluation
suite's :class:`~glmlab.eval.formats.GLMFormat`: the run's mask tokens, sentinels and 2D
positions), blanks in text order: Part A holds the text with one mask per blank, Part B
the blanks filled so far. Every blank is generated token by token, greedily or from the
top k, until [eop] (at least one token each).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from glmlab.assembly import build_data, build_glm_model, build_sample_parts, resolve_device
from glmlab.config.spec import parse_config
from glmlab.eval.formats import GLMFormat
from glmlab.objective.batches import collate_rows
from glmlab.objective.glm import GLMObjective
from glmlab.runs.layout import CHECKPOINT, CONFIG, WEIGHTS
from glmlab.structures import SpanSet
from glmlab.train.checkpoint import load_checkpoint

BLANK = re.compile(r"\[(MASK|sMASK|gMASK)\]")


def find_weights(path: str | Path) -> tuple[Path, Path]:
    """``(run directory, weights file)`` for a run directory or a weights file in one:
    a completed run's weights.pt, else its resumable checkpoint.pt."""
    path = Path(path)
    run_dir = path.parent if path.is_file() else path
    if not (run_dir / CONFIG).is_file():
        raise FileNotFoundError(
            f"{run_dir / CONFIG} not found: give a glmlab run directory or its {WEIGHTS} / "
            f"{CHECKPOINT}"
        )
    if path.is_file():
        return run_dir, path
    for name in (WEIGHTS, CHECKPOINT):
        if (run_dir / name).is_file():
            return run_dir, run_dir / name
    raise FileNotFoundError(
        f"{run_dir} holds neither {WEIGHTS} nor {CHECKPOINT} (was it trained with "
        "train.keep_checkpoint=none?)"
    )


@dataclass(frozen=True)
class Infilled:
    """The completed text and each blank's fill, in text order."""

    text: str
    fills: list[str]


class Infiller:
    """A trained GLM from a run directory (``config.yaml`` + ``checkpoint.pt``)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        run_dir, weights = find_weights(run_dir)
        try:
            cfg = OmegaConf.load(run_dir / CONFIG)
        except Exception as exc:  # YAML errors are not ValueErrors: name the file instead
            raise ValueError(f"unreadable {run_dir / CONFIG}: {type(exc).__name__}") from None
        self.spec = parse_config(cfg)
        self.device = resolve_device(device)
        data = build_data(self.spec)
        self.tokenizer = data.tokenizer
        parts = build_sample_parts(self.spec, data)
        objective = parts.objective
        if not isinstance(objective, GLMObjective):
            raise ValueError(
                f"infill needs a GLM checkpoint; {run_dir} was trained with objective.kind="
                f"{self.spec.objective.kind}"
            )
        self.format = GLMFormat(objective, max_len=self.spec.data.seq_len)
        self.mask_builder = parts.mask_builder
        self.model = build_glm_model(self.spec, self.tokenizer.padded_vocab_size, self.device)
        self.model.load_state_dict(load_checkpoint(weights, self.device)["model"])
        self.model.eval()
        specials = self.tokenizer.specials
        # Generation may end a blank ([eop]) but never emit another special token.
        self.banned = [i for i in specials.all_ids if i != specials.eop]

    def _next_logits(self, ids: np.ndarray, spans: SpanSet, at: int) -> torch.Tensor:
        """The logits at Part B position ``at`` of ``ids`` laid out with ``spans``."""
        sample = self.format.build(ids, spans)
        batch = collate_rows(
            [[sample]],
            seq_len=len(sample),
            pad_id=self.tokenizer.specials.pad,
            mask_builder=self.mask_builder,
            prepare_host=self.model.attention.prepare_host,
        ).to(self.device)
        hidden = self.model(batch.input_ids, batch.position_ids, batch.layout)
        return self.model.logits(hidden[0, sample.sep + at]).float()

    @torch.no_grad()
    def fill(
        self,
        text: str,
        *,
        top_k: int = 1,
        temperature: float = 1.0,
        max_tokens: int = 32,
        seed: int = 0,
    ) -> Infilled:
        """Fill every blank of ``text``; ``top_k`` 1 is greedy decoding."""
        vocab = self.tokenizer.vocab_size
        for key, value, ok, allowed in (
            (
                "--top-k",
                top_k,
                1 <= top_k <= vocab,
                f"an integer from 1 to {vocab} (the vocabulary)",
            ),
            ("--temperature", temperature, temperature > 0, "a number > 0"),
            ("--max-tokens", max_tokens, max_tokens >= 1, "an integer >= 1"),
        ):
            if not ok:
                raise ValueError(f"{key} {value}: must be {allowed}")
        parts = BLANK.split(text)
        pieces, kinds = parts[0::2], parts[1::2]
        if not kinds:
            raise ValueError(
                "the text has no blank: write [MASK] (or [sMASK], [gMASK]) where to fill"
            )
        if len(set(kinds)) > 1:
            raise ValueError(f"use one kind of blank per text, got {sorted(set(kinds))}")
        if kinds[0] not in self.format.trained_kinds:
            warnings.warn(
                f"[{kinds[0]}] was never trained in this run (its objective trained "
                f"{', '.join(f'[{k}]' for k in sorted(self.format.trained_kinds))}): "
                f"expect noise; use {'[MASK]' if 'MASK' in self.format.trained_kinds else 'those'}",
                stacklevel=2,
            )
        encoded = [self.tokenizer.encode(p) for p in pieces]
        eop = self.tokenizer.specials.eop
        fills: list[list[int]] = [[] for _ in kinds]
        generator = torch.Generator().manual_seed(seed)
        for j in range(len(kinds)):
            while len(fills[j]) < max_tokens:
                # Blanks before j hold their fills. Blank j holds its fill plus a placeholder
                # target, so that its Part B inputs end with the position predicting the
                # next token; later blanks hold a placeholder that blank j cannot see.
                ids, spans, at = [encoded[0]], [], 0
                start = len(encoded[0])
                for i in range(len(kinds)):
                    content = fills[i] + [eop] if i >= j else fills[i]
                    if i < j:
                        at += len(content) + 1
                    spans.append((start, start + len(content)))
                    ids += [np.asarray(content, dtype=np.int64), encoded[i + 1]]
                    start += len(content) + len(encoded[i + 1])
                flat = np.concatenate(ids)
                if len(flat) + 2 * len(kinds) > self.spec.data.seq_len:
                    if not fills[j]:
                        raise ValueError(
                            f"the text is too long for the model's {self.spec.data.seq_len} positions"
                        )
                    break  # no room left for this blank
                logits = self._next_logits(
                    flat, SpanSet(tuple(spans), len(flat), kinds[0]), at + len(fills[j])
                )
                logits[self.banned] = -torch.inf
                if not fills[j]:
                    logits[eop] = -torch.inf  # every blank gets at least one token
                token = self._pick(logits, top_k, temperature, generator)
                if token == eop:
                    break
                fills[j].append(token)
        texts = [self.tokenizer.decode(f) for f in fills]
        out = pieces[0] + "".join(t + p for t, p in zip(texts, pieces[1:], strict=True))
        return Infilled(out, texts)

    @staticmethod
    def _pick(
        logits: torch.Tensor, top_k: int, temperature: float, generator: torch.Generator
    ) -> int:
        if top_k <= 1:
            return int(logits.argmax())
        values, indices = torch.topk(logits / max(temperature, 1e-6), top_k)
        probs = torch.softmax(values, dim=-1).cpu()
        return int(indices[int(torch.multinomial(probs, 1, generator=generator))])
