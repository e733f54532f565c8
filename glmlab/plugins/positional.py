"""Built-in positional schemes: ``learned_2d``, ``learned_1d``, ``rope`` and ``rope_2d``.

Every scheme reads GLM's two position rows ``position_ids`` (B, 2, L): row 0 the position
in Part A (a Part B token carries its span's mask position), row 1 the position inside a
span (0 in Part A, 1 at [sop]). The 1D schemes fold them into one position: with
``pin_part_b`` (the default) ``pos1`` (Part B pinned at its mask, GLM-130B's [MASK] layout),
except, with ``suffix_counts_on``, a span whose mask ends Part A (GLM-130B's [gMASK]: a
suffix), which counts on as ``pos1 + pos2``; without ``pin_part_b`` every span counts on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from glmlab import hookimpl
from glmlab.plugin.base import PositionalSchemeBase
from glmlab.plugin.helpers import positions_1d

CosSin = tuple[torch.Tensor, torch.Tensor]


class PositionalScheme(PositionalSchemeBase):
    """Base of the built-ins: stores the model settings the factory gets; no embedding, no
    rotation. ``init_std``: the scale its learned tables are initialised with, N(0, init_std)
    (the scheme owns its init; the model never re-initialises it)."""

    def __init__(
        self, *, dim: int, n_heads: int, head_dim: int, max_positions: int, init_std: float = 0.02
    ) -> None:
        super().__init__()
        self.dim, self.n_heads, self.head_dim = dim, n_heads, head_dim
        self.max_positions, self.init_std = max_positions, init_std

    def learned_table(self, rows: int) -> nn.Embedding:
        """A learned (rows, dim) table, N(0, init_std)."""
        table = nn.Embedding(rows, self.dim)
        nn.init.normal_(table.weight, std=self.init_std)
        return table


def one_d_positions(
    position_ids: torch.Tensor,
    pin_part_b: bool,
    max_positions: int,
    suffix_counts_on: bool = False,
) -> torch.Tensor:
    """:func:`glmlab.plugin.helpers.positions_1d`, clamped to ``max_positions``."""
    return positions_1d(
        position_ids,
        pin_part_b=pin_part_b,
        suffix_counts_on=suffix_counts_on,
        max_positions=max_positions,
    )


class RotaryTable:
    """cos/sin of ``position * base^(-2i/rot_dim)`` for positions ``0..max_positions``,
    duplicated over both halves (rotate-half layout), float32, built once per device.

    Not a buffer on purpose: casting the model to bf16 would otherwise cast the table too,
    and bf16 angles lose the phase of large positions.
    """

    def __init__(self, rot_dim: int, max_positions: int, base: float) -> None:
        if rot_dim % 2:
            raise ValueError(f"rotary dimension must be even, got {rot_dim}")
        self.rot_dim, self.max_positions, self.base = rot_dim, max_positions, base
        self._tables: dict[torch.device, CosSin] = {}

    def cos_sin(self, positions: torch.Tensor) -> CosSin:
        """(B, 1, L, rot_dim) cos and sin for ``positions`` (B, L), broadcast over heads."""
        table = self._tables.get(positions.device)
        if table is None:
            # float64 on the CPU, then moved: exact angles whatever the target device supports.
            inv_freq = self.base ** (
                -torch.arange(0, self.rot_dim, 2, dtype=torch.float64) / self.rot_dim
            )
            angles = torch.outer(
                torch.arange(self.max_positions + 1, dtype=torch.float64), inv_freq
            )
            angles = torch.cat([angles, angles], dim=-1)
            table = tuple(t.float().to(positions.device) for t in (angles.cos(), angles.sin()))
            self._tables[positions.device] = table
        cos, sin = table
        pos = positions.clamp(max=self.max_positions)
        return cos[pos].unsqueeze(1), sin[pos].unsqueeze(1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE of ``x`` (..., rot_dim) in float32, cast back to ``x.dtype``."""
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)
    return (x32 * cos + torch.cat([-x2, x1], dim=-1) * sin).to(x.dtype)


class Learned2DPositions(PositionalScheme):
    """GLM: two learned tables (Part A position, in-span position), summed."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        # max_positions + 1 rows: the sentinel variant uses one extra position.
        self.pos1 = self.learned_table(self.max_positions + 1)
        self.pos2 = self.learned_table(self.max_positions + 1)

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.pos1(position_ids[:, 0]) + self.pos2(position_ids[:, 1])


class Learned1DPositions(PositionalScheme):
    """The paper's "w/o 2D positions" ablation (the reference's ``--no-block-position``):
    one learned table over the 1D position (Part B pinned at its mask with ``pin_part_b``)
    plus, with ``block_indicator``, the block-position table reduced to an indicator
    (row 0 in Part A, row 1 in Part B), as the reference keeps it."""

    def __init__(
        self, *, pin_part_b: bool = True, block_indicator: bool = True, **settings: Any
    ) -> None:
        super().__init__(**settings)
        self.pin_part_b = pin_part_b
        self.pos = self.learned_table(self.max_positions + 1)
        self.block = self.learned_table(2) if block_indicator else None

    def embed(self, position_ids: torch.Tensor) -> torch.Tensor:
        out = self.pos(one_d_positions(position_ids, self.pin_part_b, self.max_positions))
        if self.block is not None:
            out = out + self.block((position_ids[:, 1] > 0).long())
        return out


class RotaryPositions(PositionalScheme):
    """GLM-130B: 1D RoPE over the full head dim, on the 1D position: Part B pinned at its
    [MASK]'s position, a suffix span ([gMASK]) counting on (:func:`one_d_positions`)."""

    def __init__(
        self,
        *,
        base: float = 10000.0,
        pin_part_b: bool = True,
        suffix_counts_on: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self.pin_part_b = pin_part_b
        self.suffix_counts_on = suffix_counts_on
        self.table = RotaryTable(self.head_dim, self.max_positions, base)

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.table.cos_sin(
            one_d_positions(
                position_ids, self.pin_part_b, self.max_positions, self.suffix_counts_on
            )
        )
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)


class Rotary2DPositions(PositionalScheme):
    """ChatGLM-6B's 2D RoPE: the first half of each head rotated by pos1, the second half
    by pos2, both with one table of rotary dim ``head_dim / 2``."""

    def __init__(self, *, base: float = 10000.0, **settings: Any) -> None:
        super().__init__(**settings)
        if self.head_dim % 4:
            raise ValueError(f"rope_2d needs head_dim divisible by 4, got {self.head_dim}")
        self.table = RotaryTable(self.head_dim // 2, self.max_positions, base)

    @staticmethod
    def _rotate_halves(x: torch.Tensor, cs1: CosSin, cs2: CosSin) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([apply_rotary(x1, *cs1), apply_rotary(x2, *cs2)], dim=-1)

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cs1 = self.table.cos_sin(position_ids[:, 0])
        cs2 = self.table.cos_sin(position_ids[:, 1])
        return self._rotate_halves(q, cs1, cs2), self._rotate_halves(k, cs1, cs2)


@hookimpl
def glmlab_positional_schemes() -> dict[str, type[PositionalScheme]]:
    return {
        "learned_2d": Learned2DPositions,
        "learned_1d": Learned1DPositions,
        "rope": RotaryPositions,
        "rope_2d": Rotary2DPositions,
    }
