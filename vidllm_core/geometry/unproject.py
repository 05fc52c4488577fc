"""Depth maps -> camera / world points, SE(3) inversion and confidence filtering (VGGT utils/geometry.py conventions).

Pixel (u, v) is the pixel whose centre lies at integer coordinates (u, v) (no +0.5), as VGGT.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def closed_form_inverse_se3(transform: torch.Tensor) -> torch.Tensor:
    """Invert rigid transforms ``[..., 3, 4]`` or ``[..., 4, 4]`` as ``[R^T | -R^T t]``; returns ``[..., 4, 4]``."""
    rot = transform[..., :3, :3]
    t = transform[..., :3, 3:]
    rot_t = rot.transpose(-1, -2)
    out = torch.zeros(*transform.shape[:-2], 4, 4, dtype=transform.dtype, device=transform.device)
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -rot_t @ t
    out[..., 3, 3] = 1.0
    return out


def depth_to_camera_points(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """``depth [..., H, W]`` (or ``[..., H, W, 1]``), ``intrinsics [..., 3, 3]`` -> camera points ``[..., H, W, 3]``.

    ``x = (u - cx) d / fx``, ``y = (v - cy) d / fy``, ``z = d`` with u the column and v the row index.
    """
    if depth.shape[-1] == 1 and depth.dim() >= 3:
        depth = depth[..., 0]
    h, w = depth.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(h, device=depth.device, dtype=depth.dtype),
        torch.arange(w, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    k = intrinsics[..., None, None, :, :].to(depth.dtype)
    x = (u - k[..., 0, 2]) * depth / k[..., 0, 0]
    y = (v - k[..., 1, 2]) * depth / k[..., 1, 1]
    return torch.stack((x, y, depth), dim=-1)


def camera_to_world_points(points_cam: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """Camera points ``[..., H, W, 3]`` + camera-from-world extrinsics ``[..., 3, 4]`` -> world points ``[..., H, W, 3]``."""
    c2w = closed_form_inverse_se3(extrinsics).to(points_cam.dtype)
    rot = c2w[..., None, None, :3, :3]
    t = c2w[..., None, None, :3, 3]
    return (rot @ points_cam[..., None])[..., 0] + t


def unproject_depth_to_world(depth: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """``depth [..., H, W(, 1)]``, extrinsics ``[..., 3, 4]``, intrinsics ``[..., 3, 3]`` -> world points ``[..., H, W, 3]``."""
    return camera_to_world_points(depth_to_camera_points(depth, intrinsics), extrinsics)


def confidence_mask(conf: Any, percentile: float | None = None, threshold: float | None = None, *,
                    valid: Any = None) -> Any:
    """The one "keep confident points" rule (VGGT demos): which predictions to keep, by their confidence.

    Args:
        conf: confidence of any shape (VGGT: ``1 + exp(c)`` >= 1), a torch tensor or a numpy array.
        percentile: drop the lowest ``percentile`` percent (0-100) of the confidences still kept after the other
            rules (non-finite, ``valid``, ``threshold``); numpy's linear interpolation. 50 = keep conf >= median.
        threshold: keep ``conf >= threshold``.
        valid: optional bool mask of the same shape (e.g. finite points, image content without padding).

    Returns:
        bool mask of ``conf``'s shape and kind (tensor on its device, or numpy array).
    """
    if percentile is not None and not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    is_tensor = isinstance(conf, torch.Tensor)
    c = conf.detach().to("cpu", torch.float64).numpy() if is_tensor else np.asarray(conf, dtype=np.float64)
    keep = np.isfinite(c)
    if valid is not None:
        keep &= (valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid)).astype(bool)
    if threshold is not None:
        keep &= c >= threshold
    if percentile and keep.any():
        keep &= c >= np.percentile(c[keep], percentile)
    return torch.from_numpy(keep).to(conf.device) if is_tensor else keep
