"""VGGT-compatible reconstruction network: aggregator + camera / point / depth heads (VGGT, Wang et al. 2025, Sec. 3).

State-dict keys equal the official VGGT names (``aggregator.*``, ``camera_head.*``, ``point_head.*``, ``depth_head.*``).
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import nullcontext

import torch
from torch import nn

from vidllm_core.heads.camera import CameraHead
from vidllm_core.heads.dpt import DPTHead
from vidllm_core.models.aggregator import Aggregator

# What the heads can compute: "cameras" (pose_enc, pose_enc_list), "depth" (depth, depth_conf), "points"
# (world_points, world_points_conf). Vid-LLM builds its points from depth and cameras (Sec. 3.2), so its vision
# pass asks for DEPTH_AND_CAMERAS and the point head (38% of the forward's FLOPs) never runs there.
ALL_OUTPUTS: frozenset[str] = frozenset({"cameras", "depth", "points"})
DEPTH_AND_CAMERAS: frozenset[str] = frozenset({"cameras", "depth"})


def check_outputs(outputs: Collection[str]) -> frozenset[str]:
    """``outputs`` as a frozenset; raises ValueError on a name outside :data:`ALL_OUTPUTS` or an empty request."""
    wanted = frozenset(outputs)
    unknown = sorted(wanted - ALL_OUTPUTS)
    if unknown or not wanted:
        raise ValueError(f"outputs must be a non-empty subset of {sorted(ALL_OUTPUTS)}, got {sorted(wanted)}")
    return wanted


class VGGTReconstruction(nn.Module):
    """Feed-forward multi-view reconstruction with the official VGGT layout.

    Args:
        aggregator: the Global-Frame aggregator (with its own ``patch_embed`` for :meth:`forward`).
        camera_head: pose-encoding head, or None.
        point_head: world-point DPT head, or None.
        depth_head: depth DPT head, or None.

    The heads run in float32 with autocast disabled (as VGGT), the aggregator follows the caller's autocast
    (bf16 on GPU is supported); ``forward(..., autocast_dtype=torch.bfloat16)`` runs both in bf16 instead.
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

    def forward(
        self,
        images: torch.Tensor,
        return_tokens: bool = False,
        outputs: Collection[str] = ALL_OUTPUTS,
        autocast_dtype: torch.dtype | None = None,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Reconstruct a batch of frame sequences.

        Args:
            images: ``[S, 3, H, W]`` or ``[B, S, 3, H, W]`` RGB in [0, 1]; H, W multiples of the patch size.
            return_tokens: also return ``aggregated_tokens`` (list of ``[B, S, P, 2C]``, every layer) and
                ``patch_start_idx``.
            outputs: which heads run, a subset of :data:`ALL_OUTPUTS` (default all: official VGGT outputs). Only
                the aggregator layers the requested heads read are kept (unless ``return_tokens``).
            autocast_dtype: None: float32 (the official numerics); e.g. ``torch.bfloat16``: aggregator AND heads
                run under autocast in that dtype (an inference mode for devices with fast bf16; outputs float32).

        Returns:
            dict with (for the heads present and requested) ``pose_enc [B, S, 9]`` (last iteration),
            ``pose_enc_list`` (list of ``[B, S, 9]``), ``depth [B, S, H, W, 1]``, ``depth_conf [B, S, H, W]``,
            ``world_points [B, S, H, W, 3]``, ``world_points_conf [B, S, H, W]``.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"expected images [S,3,H,W] or [B,S,3,H,W], got {tuple(images.shape)}")
        wanted = check_outputs(outputs)
        keep = None if return_tokens else self.layers_read(wanted)
        # The aggregator follows the caller's autocast unless an inference dtype is asked for.
        agg_ctx = nullcontext() if autocast_dtype is None else _precision(images.device.type, autocast_dtype)
        with agg_ctx:
            tokens, patch_start_idx = self.aggregator(images, keep_layers=keep)
        out = self.forward_heads(tokens, patch_start_idx, (images.shape[-2], images.shape[-1]), wanted, autocast_dtype)
        if return_tokens:
            out["aggregated_tokens"] = tokens
            out["patch_start_idx"] = torch.tensor(patch_start_idx)
        return out

    def layers_read(self, outputs: Collection[str] = ALL_OUTPUTS) -> set[int]:
        """Indices of the aggregator outputs the heads of ``outputs`` read (the camera head: the last one)."""
        n = self.aggregator.depth
        layers: set[int] = set()
        if "cameras" in outputs and self.camera_head is not None:
            layers.add(n - 1)
        for name, head in (("depth", self.depth_head), ("points", self.point_head)):
            if name in outputs and head is not None:
                layers.update(i % n for i in head.intermediate_layer_idx)
        return layers

    def forward_heads(
        self,
        tokens: list[torch.Tensor | None],
        patch_start_idx: int,
        image_hw: tuple[int, int],
        outputs: Collection[str] = ALL_OUTPUTS,
        autocast_dtype: torch.dtype | None = None,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Run the requested heads (float32 with autocast off, or ``autocast_dtype``) on aggregator outputs.

        ``tokens`` may hold None for layers no requested head reads. Same keys as :meth:`forward`.
        """
        wanted = check_outputs(outputs)
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {}
        present = next(t for t in tokens if t is not None)
        device_type = present.device.type  # "meta": shape-only runs (benchmarks/flops.py) have no autocast
        with _precision(device_type, autocast_dtype):
            tokens32 = [t if t is None or autocast_dtype is not None else t.float() for t in tokens]
            pos_cache: dict = {}  # the DPT heads' uv embeddings, computed once for both
            if "cameras" in wanted and self.camera_head is not None:
                poses = [p.float() for p in self.camera_head(tokens32)]
                out["pose_enc"] = poses[-1]
                out["pose_enc_list"] = poses
            if "depth" in wanted and self.depth_head is not None:
                depth, conf = self.depth_head(tokens32, image_hw, patch_start_idx, pos_cache=pos_cache)
                out["depth"], out["depth_conf"] = depth.float(), conf.float()
            if "points" in wanted and self.point_head is not None:
                pts, conf = self.point_head(tokens32, image_hw, patch_start_idx, pos_cache=pos_cache)
                out["world_points"], out["world_points_conf"] = pts.float(), conf.float()
        return out


def _precision(device_type: str, dtype: torch.dtype | None) -> nullcontext[None] | torch.autocast:
    """Autocast off (float32, as VGGT's heads), or on in ``dtype``; nothing on the meta device."""
    if device_type == "meta":
        return nullcontext()
    if dtype is None:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=dtype)
