"""Global-Frame alternating-attention aggregator with camera and register tokens (Vid-LLM Sec. 3.2; VGGT Sec. 3.2)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vidllm_core.layers.block import Block
from vidllm_core.layers.rope import patch_positions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _first_and_rest(token: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """``token [1, 2, X, C]`` -> ``[batch*frames, X, C]``: slot 0 for frame 0 of each sequence, slot 1 for the rest."""
    first = token[:, :1].expand(batch, 1, *token.shape[2:])
    rest = token[:, 1:].expand(batch, frames - 1, *token.shape[2:])
    return torch.cat((first, rest), dim=1).reshape(batch * frames, *token.shape[2:])


class Aggregator(nn.Module):
    """Alternate frame-wise and global self-attention over ``[camera, registers, patches]`` tokens per frame.

    Per frame the tokens are ``[camera (1), registers (R), patches (h*w, row-major)]``; ``patch_start_idx = 1 + R``.
    Frame 0 of every sequence gets the first slot of ``camera_token`` / ``register_token``, later frames the second.
    Patch tokens get 2-D RoPE at ``(row + 1, col + 1)``, the special tokens at ``(0, 0)``.

    Args:
        embed_dim: token channels C (must equal the patch-embed width; no projection is inserted).
        depth: number of frame blocks (= number of global blocks).
        num_heads: attention heads.
        mlp_ratio: MLP hidden = C * mlp_ratio.
        num_register_tokens: R.
        qkv_bias, proj_bias, ffn_bias: Linear biases of the blocks.
        patch_size: pixels per patch side (used to get the grid from the image size).
        aa_order: order of the attention types in one iteration, from ``{"frame", "global"}``.
        aa_block_size: blocks of each type run per iteration.
        qk_norm: per-head qk LayerNorm in the blocks.
        rope_freq: 2-D RoPE base (VGGT: 100).
        init_values: LayerScale init of the blocks (VGGT: 0.01).
        patch_embed: the image encoder (a :class:`~vidllm_core.models.encoder.DinoEncoder` or any module mapping
            ``[B*S,3,H,W]`` normalised images to a dict with ``x_norm_patchtokens`` or to ``[B*S, N, C]``), or
            ``None`` when patch tokens are supplied from outside through :meth:`forward_tokens`.
    """

    def __init__(
        self,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        patch_size: int = 14,
        aa_order: Sequence[str] = ("frame", "global"),
        aa_block_size: int = 1,
        qk_norm: bool = True,
        rope_freq: float = 100.0,
        init_values: float = 0.01,
        patch_embed: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if depth % aa_block_size:
            raise ValueError(f"depth {depth} is not divisible by aa_block_size {aa_block_size}")
        if sorted(aa_order) != ["frame", "global"]:
            raise ValueError(f"aa_order must hold 'frame' and 'global' once each, got {list(aa_order)}")
        self.embed_dim = embed_dim
        self.depth = depth
        self.patch_size = patch_size
        self.aa_order = tuple(aa_order)
        self.aa_block_size = aa_block_size
        self.num_register_tokens = num_register_tokens
        self.patch_start_idx = 1 + num_register_tokens
        self.gradient_checkpointing = False

        def make_block() -> Block:
            return Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                init_values=init_values,
                norm_eps=1e-5,
                qk_norm=qk_norm,
                rope_freq=rope_freq,
            )

        # Registration order matches the official state_dict order.
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, embed_dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, num_register_tokens, embed_dim) * 1e-6)
        self.patch_embed = patch_embed
        self.frame_blocks = nn.ModuleList(make_block() for _ in range(depth))
        self.global_blocks = nn.ModuleList(make_block() for _ in range(depth))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, S, 3, H, W]`` in [0, 1] -> patch tokens ``[B, S, N, C]`` from the own ``patch_embed``."""
        if self.patch_embed is None:
            raise RuntimeError("this Aggregator has no patch_embed; call forward_tokens with patch tokens")
        b, s, c, h, w = images.shape
        mean = images.new_tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        std = images.new_tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
        x = ((images - mean) / std).reshape(b * s, c, h, w)
        out = self.patch_embed(x)
        tokens = out["x_norm_patchtokens"] if isinstance(out, dict) else out
        return tokens.reshape(b, s, tokens.shape[1], tokens.shape[2])

    def forward(
        self, images: torch.Tensor, keep_layers: Collection[int] | None = None
    ) -> tuple[list[torch.Tensor | None], int]:
        """``images [B, S, 3, H, W]`` in [0, 1] (normalised with ImageNet mean/std inside).

        Returns:
            (list of ``depth`` tensors ``[B, S, P, 2C]`` =
            cat(frame-block output, global-block output), ``patch_start_idx``), P = 1 + R + (H/p)(W/p).
            With ``keep_layers`` only those indices hold a tensor, the others None (see :meth:`forward_tokens`).
        """
        _, _, _, h, w = images.shape
        grid = (h // self.patch_size, w // self.patch_size)
        return self.forward_tokens(self.encode_images(images), grid, keep_layers)

    def _run(self, block: nn.Module, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, pos, use_reentrant=False)
        return block(x, pos=pos)

    def forward_tokens(
        self, patch_tokens: torch.Tensor, grid_hw: tuple[int, int], keep_layers: Collection[int] | None = None
    ) -> tuple[list[torch.Tensor | None], int]:
        """Run the alternating attention on given patch tokens.

        Args:
            patch_tokens: ``[B, S, N, C]`` with N = grid_h * grid_w (row-major).
            grid_hw: the patch grid ``(grid_h, grid_w)``.
            keep_layers: output indices to keep (None: all). The others are None in the returned list, so their
                ``[B, S, P, 2C]`` concatenations are never made (the heads read 4-5 of ``depth`` layers), and the
                blocks after the last kept layer do not run.

        Returns:
            (list of ``[B, S, P, 2C]``, ``patch_start_idx``), as :meth:`forward`.
        """
        b, s, n, c = patch_tokens.shape
        gh, gw = grid_hw
        if n != gh * gw:
            raise ValueError(f"got {n} patch tokens for a {gh}x{gw} grid")
        if c != self.embed_dim:
            raise ValueError(f"patch tokens have {c} channels, the aggregator expects {self.embed_dim}")
        special = torch.cat(
            (_first_and_rest(self.camera_token, b, s), _first_and_rest(self.register_token, b, s)), dim=1
        ).to(patch_tokens.dtype)
        tokens = torch.cat((special, patch_tokens.reshape(b * s, n, c)), dim=1)
        p = tokens.shape[1]
        pos = patch_positions(b * s, gh, gw, device=patch_tokens.device) + 1
        pos = torch.cat((pos.new_zeros(b * s, self.patch_start_idx, 2), pos), dim=1)  # [B*S, P, 2]

        gpos = pos.reshape(b, s * p, 2)  # one object for every global block (their RoPE tables are reused)
        frame_idx = global_idx = 0
        bs = self.aa_block_size
        keep = set(range(self.depth)) if keep_layers is None else {i % self.depth for i in keep_layers}
        outputs: list[torch.Tensor | None] = [None] * self.depth
        for it in range(max(keep, default=-1) // bs + 1):
            frame_out: list[torch.Tensor] = []
            global_out: list[torch.Tensor] = []
            for kind in self.aa_order:
                if kind == "frame":
                    tokens = tokens.reshape(b * s, p, c)
                    for _ in range(self.aa_block_size):
                        tokens = self._run(self.frame_blocks[frame_idx], tokens, pos)
                        frame_idx += 1
                        frame_out.append(tokens.reshape(b, s, p, c))
                else:
                    tokens = tokens.reshape(b, s * p, c)
                    for _ in range(self.aa_block_size):
                        tokens = self._run(self.global_blocks[global_idx], tokens, gpos)
                        global_idx += 1
                        global_out.append(tokens.reshape(b, s, p, c))
            for j, (f, g) in enumerate(zip(frame_out, global_out, strict=True)):
                if it * bs + j in keep:
                    outputs[it * bs + j] = torch.cat((f, g), dim=-1)
        return outputs, self.patch_start_idx
