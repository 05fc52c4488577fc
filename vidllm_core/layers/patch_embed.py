"""Image to patch tokens with one strided convolution (ViT, Dosovitskiy et al. 2021, Sec. 3.1)."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Conv ``patch_size x patch_size`` with stride ``patch_size``, flattened row-major.

    Args:
        patch_size: side of a square patch in pixels (14 for DINOv2/VGGT).
        in_chans: input channels.
        embed_dim: output channels C.
    """

    def __init__(self, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 1024) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B,3,H,W] -> [B, (H/p)*(W/p), C]`` (H and W must be multiples of the patch size)."""
        _, _, h, w = x.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)
