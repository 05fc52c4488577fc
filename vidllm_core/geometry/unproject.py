"""Depth maps -> camera / world points, SE(3) inversion and confidence filtering (VGGT utils/geometry.py conventions).

Pixel (u, v) is the pixel whose centre lies at integer coordinates (u, v) (no +0.5), as VGGT.
"""

from __future__ import annotations

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


def confidence_mask(
    conf: torch.Tensor, percentile: float | None = None, threshold: float | None = None
) -> torch.Tensor:
    """Boolean mask of the points to keep.

    Args:
        conf: confidence of any shape (VGGT: ``1 + exp(c)`` >= 1).
        percentile: drop the lowest ``percentile`` percent (0-100) of the finite confidences, computed over the
            whole tensor (as VGGT's demos).
        threshold: keep ``conf >= threshold``.

    Both may be given (both apply); non-finite confidences are always dropped.
    """
    keep = torch.isfinite(conf)
    if percentile is not None:
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        finite = conf[keep].float().flatten().sort().values
        if finite.numel():
            pos = percentile / 100.0 * (finite.numel() - 1)  # linear interpolation, as numpy.percentile
            lo = int(pos)
            hi = min(lo + 1, finite.numel() - 1)
            cut = finite[lo] + (finite[hi] - finite[lo]) * (pos - lo)
            keep &= conf >= cut.to(conf.dtype)
    if threshold is not None:
        keep &= conf >= threshold
    return keep
