"""Built-in norm layouts: ``pre_ln``, ``post_ln`` and ``deepnorm``.

A layout wraps each sublayer ``f`` with its LayerNorm and residual:

- ``pre_ln``: ``x + f(LN(x))``, a final LayerNorm after the last block (GLM, Megatron).
- ``post_ln``: ``LN(x + f(x))``, no final norm (the last block already ends in one).
- ``deepnorm``: ``LN(alpha * x + f(x))``, no final norm; Xavier-normal init with gain
  ``beta`` on the value, attention-output and both FFN matrices, gain 1 on query and key
  (``init_projections``). GLM-130B's constants by default, with a LayerNorm on the first
  block's input (``input_norm``): GLM-130B's layer ``a = LN(x); h = alpha * a + Attn(a);
  m = LN(h); out = alpha * m + MLP(m)`` is this stack with the LN moved to the next input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from glmlab import hookimpl
from glmlab.plugin.base import NormLayoutBase, SublayerKind

DEFAULT_EPS = 1e-5  # nn.LayerNorm's default; the model passes its ``norm_eps``


class PreNormResidual(nn.Module):
    """``x + f(LN(x))``."""

    def __init__(self, sublayer: nn.Module, dim: int, eps: float = DEFAULT_EPS) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.sublayer = sublayer

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return x + self.sublayer(self.norm(x), **kwargs)


class PostNormResidual(nn.Module):
    """``LN(alpha * x + f(x))``; Post-LN is ``alpha = 1``."""

    def __init__(
        self, sublayer: nn.Module, dim: int, alpha: float = 1.0, eps: float = DEFAULT_EPS
    ) -> None:
        super().__init__()
        self.sublayer = sublayer
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.alpha = alpha

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.norm(self.alpha * x + self.sublayer(x, **kwargs))


class PreLN(NormLayoutBase):
    """Pre-LN (GLM): LayerNorm on the sublayer input, one more after the last block.
    ``eps``: every LayerNorm's epsilon (the model's ``norm_eps``)."""

    def __init__(self, *, n_layers: int, eps: float = DEFAULT_EPS) -> None:
        self.n_layers, self.eps = n_layers, eps

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        return PreNormResidual(sublayer, dim, eps=self.eps)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.LayerNorm(dim, eps=self.eps)


class PostLN(NormLayoutBase):
    """Post-LN (original Transformer): LayerNorm after each residual sum."""

    def __init__(self, *, n_layers: int, eps: float = DEFAULT_EPS) -> None:
        self.n_layers, self.eps = n_layers, eps

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        return PostNormResidual(sublayer, dim, eps=self.eps)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.Identity()


# N = number of layers -> (alpha, beta). DeepNet's decoder-only constants, and GLM-130B's.
DEEPNORM_CONSTANTS: dict[str, Callable[[int], tuple[float, float]]] = {
    "deepnet": lambda n: ((2 * n) ** 0.25, (8 * n) ** -0.25),
    "glm130b": lambda n: ((2 * n) ** 0.5, (2 * n) ** -0.5),
}


BETA_GAIN = ("v", "out", "ffn_in", "ffn_out")  # Xavier-normal gain beta; the others gain 1


class DeepNorm(NormLayoutBase):
    """DeepNorm (DeepNet; GLM-130B): ``LN(alpha * x + f(x))`` around every sublayer, and
    Xavier-normal init with gain ``beta`` on the value, attention-output and both FFN
    matrices, gain 1 on query and key; nothing else scales them.

    ``constants``: ``glm130b`` (default: alpha = (2N)^1/2, beta = (2N)^-1/2) or ``deepnet``
    (alpha = (2N)^1/4, beta = (8N)^-1/4); ``alpha`` / ``beta`` given explicitly win.
    ``input_norm``: a LayerNorm on the first block's input (the embeddings), as GLM-130B's
    layer has; None means on for ``glm130b``, off for ``deepnet``.
    """

    def __init__(
        self,
        *,
        n_layers: int,
        alpha: float | None = None,
        beta: float | None = None,
        constants: Literal["deepnet", "glm130b"] = "glm130b",
        input_norm: bool | None = None,
        eps: float = DEFAULT_EPS,
    ) -> None:
        if constants not in DEEPNORM_CONSTANTS:
            raise ValueError(
                f"deepnorm constants must be one of {sorted(DEEPNORM_CONSTANTS)}, got {constants!r}"
            )
        default_alpha, default_beta = DEEPNORM_CONSTANTS[constants](n_layers)
        self.n_layers, self.eps = n_layers, eps
        self.constants = constants
        self.alpha = default_alpha if alpha is None else float(alpha)
        self.beta = default_beta if beta is None else float(beta)
        self.use_input_norm = constants == "glm130b" if input_norm is None else bool(input_norm)

    def init_projections(self, projections: Mapping[str, torch.Tensor], kind: SublayerKind) -> None:
        """Xavier-normal, gain ``beta`` for ``v out ffn_in ffn_out``, 1 for the rest."""
        for role, weight in projections.items():
            nn.init.xavier_normal_(weight, gain=self.beta if role in BETA_GAIN else 1.0)

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        return PostNormResidual(sublayer, dim, self.alpha, eps=self.eps)

    def input_norm(self, dim: int) -> nn.Module:
        return nn.LayerNorm(dim, eps=self.eps) if self.use_input_norm else nn.Identity()

    def final_norm(self, dim: int) -> nn.Module:
        return nn.Identity()


@hookimpl
def glmlab_norm_layouts() -> dict[str, type]:
    return {"pre_ln": PreLN, "post_ln": PostLN, "deepnorm": DeepNorm}
