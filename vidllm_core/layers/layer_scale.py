"""LayerScale: a learnable per-channel residual-branch scale (CaiT; used by DINOv2 and VGGT blocks)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiply the last dimension by a learnable vector ``gamma`` initialised to ``init_values``.

    Args:
        dim: number of channels C.
        init_values: initial value of every entry of ``gamma`` (DINOv2: 1.0, VGGT aggregator: 0.01).
    """

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., C] -> x * gamma [..., C]`` (an fp32 gamma promotes a bf16 ``x`` to fp32, as in VGGT)."""
        return x * self.gamma
