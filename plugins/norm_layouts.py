"""Built-in norm layouts: ``pre_ln``, ``post_ln`` and ``deepnorm``.

A layout wraps each sublayer ``f`` with its LayerNorm and residual:

- ``pre_ln``: ``x + f(LN(x))``, a final LayerNorm after the last block (GLM, Megatron).
- ``post_ln``: ``LN(x + f(x))``, no final norm (the last block already ends in one).
- ``deepnorm``: ``LN(alpha * x + f(x))``, no final norm; at wrap time the sublayer's
  value/output projections (attention) and both FFN matrices are scaled by ``beta``. The
  sublayer names those tensors through ``deepnorm_scaled_parameters()``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from glmlab import hookimpl

SublayerKind = Literal["attention", "mlp"]


class PreNormResidual(nn.Module):
    """``x + f(LN(x))``."""

    def __init__(self, sublayer: nn.Module, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.sublayer = sublayer

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return x + self.sublayer(self.norm(x), **kwargs)


class PostNormResidual(nn.Module):
    """``LN(alpha * x + f(x))``; Post-LN is ``alpha = 1``."""

    def __init__(self, sublayer: nn.Module, dim: int, alpha: float = 1.0) -> None:
        super().__init__()
        self.sublayer = sublayer
        self.norm = nn.LayerNorm(dim)
        self.alpha = alpha

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.norm(self.alpha * x + self.sublayer(x, **kwargs))


class PreLN:
    """Pre-LN (GLM): LayerNorm on the sublayer input, one more after the last block."""

    def __init__(self, *, n_layers: int) -> None:
        self.n_layers = n_layers

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        return PreNormResidual(sublayer, dim)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.LayerNorm(dim)


class PostLN:
    """Post-LN (original Transformer): LayerNorm after each residual sum."""

    def __init__(self, *, n_layers: int) -> None:
        self.n_layers = n_layers

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        return PostNormResidual(sublayer, dim)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.Identity()


# N = number of layers -> (alpha, beta). DeepNet's decoder-only constants, and GLM-130B's.
DEEPNORM_CONSTANTS = {
    "deepnet": lambda n: ((2 * n) ** 0.25, (8 * n) ** -0.25),
    "glm130b": lambda n: ((2 * n) ** 0.5, (2 * n) ** -0.5),
}


class DeepNorm:
    """DeepNorm: ``LN(alpha * x + f(x))`` and a ``beta`` init gain on the value, output and
    FFN matrices. ``alpha`` / ``beta`` left as None come from ``constants``."""

    def __init__(
        self,
        *,
        n_layers: int,
        alpha: float | None = None,
        beta: float | None = None,
        constants: Literal["deepnet", "glm130b"] = "deepnet",
    ) -> None:
        if constants not in DEEPNORM_CONSTANTS:
            raise ValueError(
                f"deepnorm constants must be one of {sorted(DEEPNORM_CONSTANTS)}, got {constants!r}"
            )
        default_alpha, default_beta = DEEPNORM_CONSTANTS[constants](n_layers)
        self.n_layers = n_layers
        self.constants = constants
        self.alpha = default_alpha if alpha is None else float(alpha)
        self.beta = default_beta if beta is None else float(beta)

    def wrap(self, sublayer: nn.Module, dim: int, kind: SublayerKind) -> nn.Module:
        scaled = getattr(sublayer, "deepnorm_scaled_parameters", None)
        if scaled is None:
            raise TypeError(
                f"deepnorm needs the {kind} sublayer {type(sublayer).__name__} to define "
                "deepnorm_scaled_parameters() (the tensors its beta rescales)"
            )
        with torch.no_grad():
            for tensor in scaled():
                tensor.mul_(self.beta)
        return PostNormResidual(sublayer, dim, self.alpha)

    def final_norm(self, dim: int) -> nn.Module:
        return nn.Identity()


@hookimpl
def glmlab_norm_layouts() -> dict[str, type]:
    return {"pre_ln": PreLN, "post_ln": PostLN, "deepnorm": DeepNorm}
