"""VGGT-compatible reconstruction network: aggregator + camera / point / depth heads (VGGT, Wang et al. 2025, Sec. 3).

State-dict keys equal the official VGGT names (``aggregator.*``, ``camera_head.*``, ``point_head.*``, ``depth_head.*``).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from vidllm_core.heads.camera import CameraHead
from vidllm_core.heads.dpt import DPTHead
from vidllm_core.models.aggregator import Aggregator


class VGGTReconstruction(nn.Module):
    """Feed-forward multi-view reconstruction with the official VGGT layout.

    Args:
        aggregator: the Global-Frame aggregator (with its own ``patch_embed`` for :meth:`forward`).
        camera_head: pose-encoding head, or None.
        point_head: world-point DPT head, or None.
        depth_head: depth DPT head, or None.

    The heads always run in float32 with autocast disabled (as VGGT), the aggregator follows the caller's
    autocast (bf16 on GPU is supported).
    """

    def __init__(
        self,
        aggregator: Aggregator,
        camera_head: CameraHead | None = None,
        point_head: DPTHead | None = None,
        depth_head: DPTHead | None = None,
    ) -> None:
        super().__init__()
        self.aggregator = aggregator
        self.camera_head = camera_head
        self.point_head = point_head
        self.depth_head = depth_head

    def forward(self, images: torch.Tensor, return_tokens: bool = False) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Reconstruct a batch of frame sequences.

        Args:
            images: ``[S, 3, H, W]`` or ``[B, S, 3, H, W]`` RGB in [0, 1]; H, W multiples of the patch size.
            return_tokens: also return ``aggregated_tokens`` (list of ``[B, S, P, 2C]``) and ``patch_start_idx``.

        Returns:
            dict with (for the heads present) ``pose_enc [B, S, 9]`` (last iteration), ``pose_enc_list`` (list of
            ``[B, S, 9]``), ``depth [B, S, H, W, 1]``, ``depth_conf [B, S, H, W]``, ``world_points [B, S, H, W, 3]``,
            ``world_points_conf [B, S, H, W]``.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"expected images [S,3,H,W] or [B,S,3,H,W], got {tuple(images.shape)}")
        tokens, patch_start_idx = self.aggregator(images)
        out = self.forward_heads(tokens, patch_start_idx, (images.shape[-2], images.shape[-1]))
        if return_tokens:
            out["aggregated_tokens"] = tokens
            out["patch_start_idx"] = torch.tensor(patch_start_idx)
        return out

    def forward_heads(
        self, tokens: list[torch.Tensor], patch_start_idx: int, image_hw: tuple[int, int]
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Run the heads (float32, autocast off) on aggregator outputs; same keys as :meth:`forward`."""
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {}
        device_type = tokens[0].device.type  # "meta": shape-only runs (benchmarks/flops.py) have no autocast
        no_autocast = nullcontext() if device_type == "meta" else torch.autocast(device_type, enabled=False)
        with no_autocast:
            tokens32 = [t.float() for t in tokens]
            if self.camera_head is not None:
                poses = self.camera_head(tokens32)
                out["pose_enc"] = poses[-1]
                out["pose_enc_list"] = poses
            if self.depth_head is not None:
                depth, conf = self.depth_head(tokens32, image_hw, patch_start_idx)
                out["depth"], out["depth_conf"] = depth, conf
            if self.point_head is not None:
                pts, conf = self.point_head(tokens32, image_hw, patch_start_idx)
                out["world_points"], out["world_points_conf"] = pts, conf
        return out
