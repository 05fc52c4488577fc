"""Two-layer perceptron with exact (erf) GELU, as in ViT / DINOv2 / VGGT blocks."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``.

    Args:
        in_features: input channels.
        hidden_features: hidden channels (default ``in_features``).
        out_features: output channels (default ``in_features``).
        bias: whether both Linear layers carry a bias.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., in] -> [..., out]``."""
        return self.fc2(self.act(self.fc1(x)))
