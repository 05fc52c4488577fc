"""Pre-norm transformer block with LayerScale: ``x + ls1(attn(norm1 x)); x + ls2(mlp(norm2 x))`` (ViT / DINOv2 / VGGT)."""

from __future__ import annotations

import torch
from torch import nn

from vidllm_core.layers.attention import Attention
from vidllm_core.layers.layer_scale import LayerScale
from vidllm_core.layers.mlp import Mlp


class Block(nn.Module):
    """One pre-norm attention + MLP block.

    Args:
        dim: token channels C.
        num_heads: attention heads.
        mlp_ratio: MLP hidden size = int(C * mlp_ratio).
        qkv_bias, proj_bias, ffn_bias: biases of the qkv, attention-output and MLP Linears.
        init_values: LayerScale init; ``None`` (or 0) means no LayerScale (no ``ls1/ls2`` keys).
        norm_eps: eps of norm1/norm2 (VGGT aggregator and heads: 1e-5; DINOv2: 1e-6).
        qk_norm: per-head LayerNorm on q and k (eps 1e-5, as VGGT's qk-norm).
        rope_freq: 2-D RoPE base; ``None`` disables RoPE.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: float | None = None,
        norm_eps: float = 1e-5,
        qk_norm: bool = False,
        rope_freq: float | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, qk_norm=qk_norm, rope_freq=rope_freq
        )
        self.ls1: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, N, C]``, optional RoPE positions ``pos [B, N, 2]`` -> ``[B, N, C]``."""
        x = x + self.ls1(self.attn(self.norm1(x), pos=pos))
        return x + self.ls2(self.mlp(self.norm2(x)))
