"""DINOv2 ViT with register tokens: the shared image encoder (Vid-LLM Sec. 3.1; Oquab et al. 2023, Darcet et al. 2024).

Attribute names equal the official DINOv2 / VGGT ``aggregator.patch_embed.*`` sub-keys, so weights load strictly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidllm_core.layers.block import Block
from vidllm_core.layers.patch_embed import PatchEmbed


class DinoEncoder(nn.Module):
    """DINOv2 vision transformer (MLP FFN, LayerScale, optional registers).

    Token order: ``[cls, registers (R), patches (row-major)]``; the position embedding is added to cls + patches
    before the registers are inserted (registers get none).

    Args:
        img_size: pretraining image side; the pos-embed grid is ``img_size // patch_size`` squared.
        patch_size: patch side in pixels.
        embed_dim: token channels C.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden = C * mlp_ratio.
        num_register_tokens: R (0 for plain DINOv2).
        init_values: LayerScale init (DINOv2 hub / VGGT: 1.0); None disables LayerScale.
        qkv_bias, proj_bias, ffn_bias: Linear biases.
        layernorm_eps: eps of every LayerNorm (DINOv2: 1e-6).
        interpolate_antialias: antialias flag of the bicubic pos-embed resize (VGGT and HF-with-registers: True;
            HF ``Dinov2Model``: False).
        interpolate_offset: 0 resizes with ``size=(h, w)`` (VGGT, HF); > 0 uses the original DINOv2
            ``scale_factor=((h + offset)/M, (w + offset)/M)``.
    """

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        init_values: float | None = 1.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        layernorm_eps: float = 1e-6,
        interpolate_antialias: bool = True,
        interpolate_offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens > 0 else None
        )
        # Unused by the forward (no masked-image modelling here); kept so official checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=3, embed_dim=embed_dim)
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                init_values=init_values,
                norm_eps=layernorm_eps,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=layernorm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, height: int, width: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Position embedding for an image of ``height x width`` pixels: ``[1, 1 + (H/p)(W/p), C]``.

        Unchanged when the patch count equals the pretraining grid and the image is square; otherwise the
        square grid is resized bicubically in float32 (antialias / offset per the constructor flags).
        """
        dtype = dtype or self.pos_embed.dtype
        n_grid = self.pos_embed.shape[1] - 1
        h0, w0 = height // self.patch_size, width // self.patch_size
        if h0 * w0 == n_grid and height == width:
            return self.pos_embed.to(dtype)
        side = int(math.isqrt(n_grid))
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            scale = ((h0 + self.interpolate_offset) / side, (w0 + self.interpolate_offset) / side)
            patch_pos = F.interpolate(
                patch_pos, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias
            )
        else:
            patch_pos = F.interpolate(patch_pos, size=(h0, w0), mode="bicubic", antialias=self.interpolate_antialias)
        if patch_pos.shape[-2:] != (h0, w0):
            raise ValueError(f"pos-embed interpolation gave {tuple(patch_pos.shape[-2:])}, expected {(h0, w0)}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(dtype)

    def prepare_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B,3,H,W]`` (already mean/std normalised) -> tokens ``[B, 1 + R + N, C]``."""
        b, _, h, w = images.shape
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(b, -1, -1).to(x.dtype), x), dim=1)
        x = x + self.interpolate_pos_encoding(h, w, dtype=x.dtype)
        if self.register_tokens is not None:
            x = torch.cat((x[:, :1], self.register_tokens.expand(b, -1, -1).to(x.dtype), x[:, 1:]), dim=1)
        return x

    def forward(
        self, images: torch.Tensor, intermediate_layers: Sequence[int] | None = None
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Encode normalised images.

        Args:
            images: ``[B, 3, H, W]``, ImageNet mean/std normalised, H and W multiples of the patch size.
            intermediate_layers: 0-based block indices whose outputs to return (after the final norm).

        Returns:
            ``x_norm_clstoken [B, C]``, ``x_norm_regtokens [B, R, C]``, ``x_norm_patchtokens [B, N, C]``,
            ``x_prenorm [B, 1+R+N, C]`` and, when ``intermediate_layers`` is given, ``intermediates``: a list of
            normed patch tokens ``[B, N, C]``, one per requested index (in the requested order).
        """
        x = self.prepare_tokens(images)
        wanted = set(intermediate_layers or ())
        if any(i < 0 or i >= len(self.blocks) for i in wanted):
            raise ValueError(f"intermediate_layers {sorted(wanted)} out of range for {len(self.blocks)} blocks")
        saved: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in wanted:
                saved[i] = x
        x_norm = self.norm(x)
        start = 1 + self.num_register_tokens
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1:start],
            "x_norm_patchtokens": x_norm[:, start:],
            "x_prenorm": x,
        }
        if intermediate_layers is not None:
            out["intermediates"] = [self.norm(saved[i])[:, start:] for i in intermediate_layers]
        return out
