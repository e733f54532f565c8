"""The span-sampler contract."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from glmlab.objective.sample import build_glm_sample
from glmlab.plugin.guards import check_span_set
from glmlab.structures import SpanSet
from glmlab.testing.base import PluginContract
from glmlab.testing.samples import EOP, MASK, SOP, random_text


def _gaps(s: SpanSet) -> list[int]:
    return [b - e for (_, e), (b, _) in zip(s.spans, s.spans[1:], strict=False)]


# Declarable statistics. Bounds hold for every sample the contract draws; means are
# measured over ``stat_samples`` texts of ``stat_text_len`` tokens with room to spare.
BOUNDS: dict[str, tuple[str, Callable[[SpanSet, Any], bool]]] = {
    "max_mask_ratio": (
        "masked tokens / kept tokens <= value",
        lambda s, v: s.n_masked <= v * s.keep + 1e-9,
    ),
    "max_span_length": (
        "every span <= value tokens",
        lambda s, v: all(e - b <= v for b, e in s.spans),
    ),
    "min_gap": (
        "at least value unmasked tokens between spans",
        lambda s, v: min(_gaps(s), default=v) >= v,
    ),
    "mask_kind": ("mask_kind == value", lambda s, v: s.mask_kind == v),
}
MEANS: dict[str, tuple[str, Callable[[list[SpanSet]], float]]] = {
    "mask_ratio": (
        "mean of masked / kept tokens",
        lambda sets: float(np.mean([s.n_masked / s.keep for s in sets])),
    ),
    "mean_span_length": (
        "mean span length",
        lambda sets: float(np.mean([e - b for s in sets for b, e in s.spans] or [0])),
    ),
    "spans_per_sample": (
        "mean number of spans",
        lambda sets: float(np.mean([len(s.spans) for s in sets])),
    ),
}


@contextlib.contextmanager
def _global_rngs_seeded(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's global generators; restore them afterwards."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


class SpanSamplerContract(PluginContract):
    """Contract tests for a span sampler.

    ``declared`` maps statistics the sampler guarantees to their values; at least one is
    required. Bounds (checked on every drawn sample): ``max_mask_ratio``,
    ``max_span_length``, ``min_gap``, ``mask_kind``. Means (over long texts; a number is
    compared within 5%, or give ``pytest.approx(value, abs=...)``): ``mask_ratio``,
    ``mean_span_length``, ``spans_per_sample``.
    """

    kind = "span_sampler"
    declared: ClassVar[Mapping[str, Any]] = {}
    stat_text_len: ClassVar[int] = 400
    stat_samples: ClassVar[int] = 300

    def _sampler_name(self) -> str:
        return self.name or self.label

    def _check(self, spans: SpanSet, text_len: int, max_len: int) -> None:
        check_span_set(spans, text_len, max_len, self._sampler_name())  # the runtime guard
        for key, (meaning, holds) in BOUNDS.items():
            if key in self.declared:
                assert holds(spans, self.declared[key]), (
                    f"{self.label} declares {key}={self.declared[key]!r} ({meaning}) but "
                    f"returned {spans} for a text of {text_len} tokens, max_len={max_len}"
                )

    def test_spans_valid_and_fit_the_row(self) -> None:
        """Sorted, non-overlapping, non-empty spans inside ``keep``; ``keep`` within the
        text; the GLM sample fits ``max_len``, including budgets shorter than the text."""
        sampler = self.make()
        rng = np.random.default_rng(0)
        for n in (1, 2, 3, 5, 8, 13, 40, 100, 300):
            text = random_text(rng, n)
            for max_len in sorted({2, 3, n // 2 + 2, n + 2, n + 4, 2 * n + 2}):
                for _ in range(3):
                    spans = sampler.sample(text, max_len=max_len, rng=rng)
                    self._check(spans, n, max_len)
                    sample = build_glm_sample(
                        text.ids[: spans.keep],
                        spans.spans,
                        mask_id=MASK,
                        sop_id=SOP,
                        eop_id=EOP,
                        final_eop=spans.eop,
                    )
                    assert len(sample) <= max_len

    def test_deterministic_under_a_seed(self) -> None:
        """Same generator seed, same spans, whatever the global generators hold: all
        randomness comes from the ``rng`` argument."""
        texts = [random_text(np.random.default_rng(i), n) for i, n in enumerate((7, 40, 200))]

        def draw(global_seed: int) -> list[SpanSet]:
            with _global_rngs_seeded(global_seed):
                sampler = self.make()
                rng = np.random.default_rng(1234)
                return [
                    sampler.sample(t, max_len=len(t) + 8, rng=rng) for t in texts for _ in range(5)
                ]

        assert draw(0) == draw(1), (
            f"{self.label} draws different spans from the same seed: it must take all its "
            "randomness from the rng passed to sample()"
        )

    def test_declared_statistics(self) -> None:
        unknown = sorted(set(self.declared) - set(BOUNDS) - set(MEANS))
        assert not unknown, (
            f"unknown statistics {unknown}; declarable: {sorted({**BOUNDS, **MEANS})}"
        )
        assert self.declared, (
            f"{type(self).__name__}.declared is empty: declare what {self.label} guarantees, "
            f"from {sorted({**BOUNDS, **MEANS})}"
        )
        sampler = self.make()
        rng = np.random.default_rng(0)
        n, max_len = self.stat_text_len, 2 * self.stat_text_len
        sets = [
            sampler.sample(random_text(rng, n), max_len=max_len, rng=rng)
            for _ in range(self.stat_samples)
        ]
        for spans in sets:
            self._check(spans, n, max_len)
        for key, (meaning, measure) in MEANS.items():
            if key in self.declared:
                want = self.declared[key]
                expected = pytest.approx(want, rel=0.05) if isinstance(want, int | float) else want
                got = measure(sets)
                assert got == expected, (
                    f"{self.label}: declared {key} ({meaning}) {want!r}, measured {got:.4f}"
                )
