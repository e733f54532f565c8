"""One declared family of tests per report, adjusted together.

Every p-value that can make a report say "significant", "equivalent" or "less stable"
(variants x verdict metrics x rungs: the differences, the pooled gap and its trend over a
ladder, the equivalence tests, the stability tests) joins one :class:`Family`, adjusted
by Holm's step-down method (``statsmodels.stats.multitest.multipletests``; family-wise
error rate at most 5% under any dependence between the tests). A report states its family
(:meth:`Family.describe`) and shows adjusted p-values. The A/A control's tests form a
family of their own (a check of the noise model, not a claim about a variant).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from statsmodels.stats.multitest import multipletests

from glmlab.report.stats import ALPHA

__all__ = ["METHOD", "METHOD_NAME", "Family"]

METHOD = "holm"
METHOD_NAME = "Holm's step-down method (family-wise error rate 5%)"


@dataclass
class Family:
    """p-values by key, with what each tests (``kind``: difference, pooled, trend,
    equivalence, stability); :meth:`adjust` once all are in."""

    name: str = "the report's verdicts"
    raw: dict[Hashable, float] = field(default_factory=dict)
    kinds: dict[Hashable, str] = field(default_factory=dict)
    adjusted: dict[Hashable, float] = field(default_factory=dict)

    def add(self, key: Hashable, p: float, kind: str) -> None:
        """Put a test in the family (a key once); p must be a probability."""
        if key in self.raw:
            raise ValueError(f"test {key!r} is already in the family")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"test {key!r}: p = {p} is not a probability")
        self.raw[key] = float(p)
        self.kinds[key] = kind
        self.adjusted.clear()

    def adjust(self) -> Family:
        """Holm-adjust every p-value of the family (returns the family)."""
        keys = list(self.raw)
        if keys:
            out = multipletests([self.raw[k] for k in keys], alpha=ALPHA, method=METHOD)[1]
            self.adjusted = {k: float(p) for k, p in zip(keys, out, strict=True)}
        return self

    def p(self, key: Hashable) -> float | None:
        """The adjusted p of ``key`` (None when it is not in the family)."""
        if key not in self.raw:
            return None
        if not self.adjusted:
            self.adjust()
        return self.adjusted[key]

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.raw

    def describe(self) -> str:
        """One sentence: how many tests of which kinds, and the adjustment."""
        if not self.raw:
            return "no test."
        counts: dict[str, int] = {}
        for kind in self.kinds.values():
            counts[kind] = counts.get(kind, 0) + 1
        parts = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        return (
            f"one family of {len(self.raw)} test{'s' if len(self.raw) != 1 else ''} ({parts}), "
            f"adjusted by {METHOD_NAME}; "
            "every p shown with a verdict is adjusted in it."
        )
