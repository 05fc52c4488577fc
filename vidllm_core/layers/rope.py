"""2-D rotary position embedding on patch rows/columns (RoFormer, Su et al. 2021; VGGT Sec. 3.2 / layers/rope.py)."""

from __future__ import annotations

import torch
from torch import nn


def patch_positions(batch: int, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Integer ``(row, col)`` positions of a ``height x width`` patch grid, row-major.

    Returns:
        ``[batch, height*width, 2]`` int64, ``[..., 0]`` the row (y), ``[..., 1]`` the column (x).
    """
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    grid = torch.cartesian_prod(rows, cols)
    return grid.unsqueeze(0).expand(batch, -1, -1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


# (frequency, half, dtype, device, version, id of positions) -> (positions, tables): the tables of a few recent position
# tensors, shared by all blocks (computed in float32 either way: reuse changes no value).
_RECENT_TABLES: dict[tuple, tuple[torch.Tensor, tuple]] = {}


class RotaryPositionEmbedding2D(nn.Module):
    """Rotate the first half of each head by the row position and the second half by the column.

    Within each half of size ``d``: ``inv_freq = 1 / frequency ** (arange(0, d, 2) / d)``, angles duplicated
    (half-split / NeoX style, not interleaved), ``x * cos + rotate_half(x) * sin``. The tables are computed in
    float32 and cast to the token dtype. No parameters or buffers.

    Args:
        frequency: RoPE base (VGGT: 100).
    """

    def __init__(self, frequency: float = 100.0) -> None:
        super().__init__()
        self.frequency = float(frequency)

    def _compute_tables(
        self, dim: int, positions: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim
        inv_freq = 1.0 / (self.frequency**exponents)
        angles = positions.to(torch.float32)[..., None] * inv_freq  # [B, N, dim/2]
        angles = torch.cat((angles, angles), dim=-1)  # [B, N, dim]
        return angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]  # [B, 1, N, dim]

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``tokens [B, heads, N, D]``, ``positions [B, N, 2]`` (row, col) -> rotated ``[B, heads, N, D]``."""
        half = tokens.shape[-1] // 2
        tables = self._cached_tables(half, positions, tokens.dtype)
        out = []
        for feats, (cos, sin) in zip(tokens.split(half, dim=-1), tables, strict=True):
            out.append(feats * cos + _rotate_half(feats) * sin)
        return torch.cat(out, dim=-1)

    def _cached_tables(self, half: int, positions: torch.Tensor, dtype: torch.dtype) -> tuple:
        """(row tables, column tables). Every block of an aggregator pass (q and k) rotates by the same position
        tensor: the last few are reused while it is the same, unmodified tensor object (the cache holds it, so its
        id cannot be recycled meanwhile)."""
        version = 0 if positions.is_inference() else positions._version  # inference tensors have none
        key = (self.frequency, half, dtype, positions.device, version, id(positions))
        hit = _RECENT_TABLES.get(key)
        if hit is not None and hit[0] is positions:
            return hit[1]
        tables = tuple(self._compute_tables(half, positions[..., i], dtype) for i in (0, 1))
        if len(_RECENT_TABLES) >= 4:
            _RECENT_TABLES.clear()
        _RECENT_TABLES[key] = (positions, tables)
        return tables
