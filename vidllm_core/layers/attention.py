"""Multi-head self-attention with optional per-head qk LayerNorm and 2-D RoPE (VGGT layers/attention.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidllm_core.layers.rope import RotaryPositionEmbedding2D


class Attention(nn.Module):
    """``proj(SDPA(rope(q_norm(q)), rope(k_norm(k)), v))`` with a fused ``qkv`` Linear.

    Args:
        dim: token channels C (a multiple of ``num_heads``).
        num_heads: attention heads; head_dim = C / num_heads.
        qkv_bias: bias of the qkv Linear.
        proj_bias: bias of the output Linear.
        qk_norm: apply ``LayerNorm(head_dim)`` (affine) to q and k per head, before RoPE.
        norm_eps: eps of the qk LayerNorms (VGGT: torch default 1e-5).
        rope_freq: RoPE base; ``None`` disables RoPE (then ``pos`` is ignored).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        rope_freq: float | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.rope = RotaryPositionEmbedding2D(rope_freq) if rope_freq is not None else None
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, N, C]``, ``pos [B, N, 2]`` integer (row, col) or None -> ``[B, N, C]``."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, hd]
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None and pos is not None:
            q = self.rope(q, pos)
            k = self.rope(k, pos)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
