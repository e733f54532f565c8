"""Accuracy through loss: an accuracy-type metric predicted in two steps, as the OLMo model
ladder does (Bhagia et al. 2024): a loss against compute (the ladder's power-law fit), then
the accuracy against that loss by a sigmoid.

The map is ``acc = floor + (1 - floor) / (1 + exp(k (L - L0)))`` with ``floor`` the
metric's chance level (cloze: one over the candidates; the run's recorded reference), the
ceiling 1 and ``k > 0``, fitted per variant (an ablation may change how loss turns into
accuracy) by :func:`scipy.optimize.least_squares` over every completed run of the variant
(grid and seed runs: the map relates two metrics of one model, whatever its lr). Near
chance accuracy is flat in the loss and then rises: a sigmoid in the loss, which a power
law in compute does not follow. :class:`TwoStep` composes the two fits into one
:class:`~glmlab.ladder.predict.Predictor` (parameters stacked, covariances block-diagonal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from glmlab.ladder.fit import MIN_RESIDUAL_DF, FitResult

__all__ = ["K_BOUNDS", "LinkFit", "TwoStep", "fit_link"]

K_BOUNDS = (1e-3, 1e3)  # the sigmoid's slope per nat of loss


@dataclass
class LinkFit:
    """``acc = floor + (1 - floor) * expit(-k (L - L0))``: ``theta = (log k, L0)``."""

    floor: float
    theta: np.ndarray
    cov: np.ndarray
    sigma2: float  # one run's accuracy variance about the map
    df: int
    determined: bool
    note: str = ""
    span: tuple[float, float] = (math.nan, math.nan)  # the losses it was fitted on

    @property
    def k(self) -> float:
        return float(math.exp(self.theta[0]))

    @property
    def l0(self) -> float:
        return float(self.theta[1])

    def value(self, loss: float, theta: np.ndarray | None = None) -> float:
        """The accuracy the map gives ``loss`` (``theta``: other parameters)."""
        logk, l0 = self.theta if theta is None else theta
        z = math.exp(logk) * (loss - l0)
        return self.floor + (1.0 - self.floor) * _expit(-z)

    def slope(self, loss: float) -> float:
        """d acc / d loss at ``loss``."""
        s = _expit(-self.k * (loss - self.l0))
        return -(1.0 - self.floor) * self.k * s * (1.0 - s)


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def fit_link(losses: Sequence[float], accs: Sequence[float], floor: float) -> LinkFit:
    """The sigmoid map of accuracies ``accs`` on losses ``losses`` (one pair per run)."""
    x = np.asarray(losses, dtype=float)
    y = np.asarray(accs, dtype=float)
    n = len(x)
    empty = np.full((2, 2), math.nan)
    if n < 2 + MIN_RESIDUAL_DF or float(np.ptp(x)) <= 0:
        return LinkFit(
            floor,
            np.array([0.0, float(np.mean(x)) if n else 0.0]),
            empty,
            math.nan,
            0,
            False,
            f"{n} runs over one loss: too few to fit a sigmoid",
        )

    def resid(t: np.ndarray) -> np.ndarray:
        z = np.exp(t[0]) * (x - t[1])
        return y - (floor + (1.0 - floor) / (1.0 + np.exp(np.clip(z, -700, 700))))

    # start: slope across the loss range, midpoint where accuracy is halfway up
    mid = floor + 0.5 * (1.0 - floor)
    l0 = float(np.interp(mid, np.sort(y), x[np.argsort(y)])) if np.ptp(y) > 0 else float(x.mean())
    t0 = np.array([math.log(4.0 / max(float(np.ptp(x)), 1e-6)), l0])
    lo = np.array([math.log(K_BOUNDS[0]), float(x.min()) - 20.0])
    hi = np.array([math.log(K_BOUNDS[1]), float(x.max()) + 20.0])
    sol = optimize.least_squares(
        resid,
        np.clip(t0, lo + 1e-9, hi - 1e-9),
        bounds=(lo, hi),
        method="trf",
        x_scale="jac",
        max_nfev=2000,
    )
    df = n - 2
    sigma2 = float(np.sum(sol.fun**2)) / df
    jac = np.asarray(sol.jac, dtype=float)
    notes = []
    if df < MIN_RESIDUAL_DF:
        notes.append(f"{n} runs for 2 parameters")
    if np.any(np.minimum(sol.x - lo, hi - sol.x) <= 1e-6 * np.maximum(1.0, np.abs(lo))):
        notes.append("a parameter of the sigmoid sits at its bound")
    sv = np.linalg.svd(jac, compute_uv=False)
    if sv.min() <= 1e-9 * max(sv.max(), 1e-300):
        notes.append("the sigmoid's slope and midpoint trade off (the losses span too little)")
        cov = empty
    else:
        cov = sigma2 * np.linalg.pinv(jac.T @ jac)
    span = (float(x.min()), float(x.max()))
    return LinkFit(
        floor, np.asarray(sol.x, float), cov, sigma2, df, not notes, "; ".join(notes), span
    )


@dataclass
class TwoStep:
    """Accuracy of a variant at compute C: ``link[v](loss_fit(v, C))``, a
    :class:`~glmlab.ladder.predict.Predictor`."""

    loss: FitResult
    links: Mapping[str, LinkFit]
    theta: np.ndarray = field(init=False)
    cov: np.ndarray = field(init=False)
    df: int = field(init=False)

    def __post_init__(self) -> None:
        self._order = [v for v in self.loss.names if v in self.links]
        parts = [self.loss.theta, *(self.links[v].theta for v in self._order)]
        self.theta = np.concatenate(parts)
        size = self.theta.size
        cov = np.zeros((size, size))
        start = 0
        for block in [self.loss.cov, *(self.links[v].cov for v in self._order)]:
            k = block.shape[0]
            cov[start : start + k, start : start + k] = block
            start += k
        self.cov = cov
        self.df = int(min([self.loss.df, *(self.links[v].df for v in self._order)]))

    @property
    def names(self) -> list[str]:
        return list(self._order)

    def _split(self, theta: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
        n = self.loss.theta.size
        i = self._order.index(variant)
        return theta[:n], theta[n + 2 * i : n + 2 * i + 2]

    def value(self, theta: np.ndarray, variant: str, compute: float) -> float:
        """The variant's accuracy at ``compute`` for parameters ``theta``."""
        loss_theta, link_theta = self._split(theta, variant)
        return self.links[variant].value(self.loss.value(loss_theta, variant, compute), link_theta)

    def predict(self, variant: str, compute: float) -> float:
        return self.value(self.theta, variant, compute)

    def run_var(self, variant: str, compute: float) -> float:
        """One run's accuracy variance: its loss's noise through the map's slope, plus
        the accuracy's own scatter about the map."""
        link = self.links[variant]
        loss = self.loss.predict(variant, compute)
        return link.slope(loss) ** 2 * self.loss.run_var(variant, compute) + link.sigma2
