"""Reconstruction losses L_recon-task of Eq. 8 (Vid-LLM Sec. 3.4), after VGGT `training/loss.py` (facts: VGGT.md sec. 8).

Camera loss on the 9-d pose encoding [T(3), quaternion XYZW(4), fov_h, fov_w] over the camera head's refinement
iterations, depth / point-map regression with an aleatoric confidence term, a multi-scale gradient term, quantile
filtering, and the ground-truth scene normalisation applied before the losses.

Named dimensions: B batch, S frames, H x W pixels, K refinement iterations.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "camera_loss",
    "depth_loss",
    "point_loss",
    "regression_loss",
    "gradient_loss",
    "filter_by_quantile",
    "normalize_gt_scene",
    "NormalizedScene",
]

_HARD_MAX = 100.0


def _upcast(x: Tensor) -> Tensor:
    """Compute losses in float32 when inputs come in half precision (bf16 / fp16 autocast outputs)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _zero(like: Tensor) -> Tensor:
    """A zero scalar still attached to `like`'s graph (so backward() works when a term is skipped)."""
    return like.sum() * 0.0


# --------------------------------------------------------------------------------------------------------- camera
def camera_loss(
    pose_enc_list: list[Tensor] | tuple[Tensor, ...],
    gt_pose_enc: Tensor,
    gamma: float = 0.6,
    weights: tuple[float, float, float] = (1.0, 1.0, 0.5),
    valid_seq: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Camera loss on the pose encoding, summed over refinement iterations (VGGT `compute_camera_loss`).

    For iteration k of K the weight is gamma^(K-k-1) (the last iteration weighs 1). Per iteration the L1 error is
    averaged separately over translation T = [0:3] (absolute errors clamped at 100 first), quaternion R = [3:7]
    and field of view FL = [7:9]; each is summed over iterations with its weight and divided by K.
    total = weights[0]*T + weights[1]*R + weights[2]*FL. The global camera weight (VGGT: 5.0) belongs to the
    combiner (`stage2_loss`).

    Args:
        pose_enc_list: K tensors [B, S, 9], one per refinement iteration (last = final prediction).
        gt_pose_enc: [B, S, 9] ground truth (from the normalised GT extrinsics and intrinsics).
        gamma: iteration discount.
        weights: (w_T, w_R, w_FL).
        valid_seq: [B] bool, the sequences that count (VGGT: first frame has > 100 valid pixels); None = all.
            When no sequence is valid every term is 0 (still attached to the graph).

    Returns:
        (total, {"T", "R", "FL": unweighted, detached}).
    """
    if len(pose_enc_list) == 0:
        raise ValueError("pose_enc_list is empty")
    if gt_pose_enc.shape[-1] != 9:
        raise ValueError(f"pose encodings must end in 9 values, got {tuple(gt_pose_enc.shape)}")
    n = len(pose_enc_list)
    loss_t = loss_r = loss_fl = _zero(_upcast(pose_enc_list[-1]))
    for k, pred in enumerate(pose_enc_list):
        pred = _upcast(pred)
        if pred.shape != gt_pose_enc.shape:
            raise ValueError(f"iteration {k}: prediction {tuple(pred.shape)} != ground truth {tuple(gt_pose_enc.shape)}")
        gt = gt_pose_enc.to(pred.dtype)
        if valid_seq is not None:
            pred, gt = pred[valid_seq], gt[valid_seq]
        if pred.numel() == 0:
            continue
        w = gamma ** (n - k - 1)
        err = (pred - gt).abs()
        loss_t = loss_t + w * err[..., 0:3].clamp(max=_HARD_MAX).mean()
        loss_r = loss_r + w * err[..., 3:7].mean()
        loss_fl = loss_fl + w * err[..., 7:9].mean()
    loss_t, loss_r, loss_fl = loss_t / n, loss_r / n, loss_fl / n
    w_t, w_r, w_fl = weights
    total = w_t * loss_t + w_r * loss_r + w_fl * loss_fl
    return total, {"T": loss_t.detach(), "R": loss_r.detach(), "FL": loss_fl.detach()}


# ------------------------------------------------------------------------------------------ depth / point maps
def filter_by_quantile(values: Tensor, valid_range: float, min_elements: int = 1000, hard_max: float = _HARD_MAX) -> Tensor:
    """Clamp per-element losses at `hard_max` and, when more than `min_elements` remain, drop those at or above the
    `valid_range` quantile (linear interpolation; the threshold itself is detached and capped at `hard_max`).

    Args:
        values: 1-D per-element losses.
    Returns:
        1-D kept values (all of them when the filter would keep `min_elements` or fewer).
    """
    values = values.clamp(max=hard_max)
    n = values.numel()
    if n <= min_elements or valid_range >= 1.0:
        return values
    flat = values.detach().flatten()
    pos = valid_range * (n - 1)
    lo = int(pos)
    frac = pos - lo
    lo_v = torch.kthvalue(flat, lo + 1).values
    hi_v = torch.kthvalue(flat, min(lo + 2, n)).values
    thresh = torch.clamp(lo_v + frac * (hi_v - lo_v), max=hard_max)
    keep = values < thresh
    if int(keep.sum()) > min_elements:
        return values[keep]
    return values


def _sanitize(x: Tensor) -> Tensor:
    """VGGT `check_and_fix_inf_nan`: NaN/Inf -> 0, then clamp to [-100, 100]."""
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).clamp(-_HARD_MAX, _HARD_MAX)


def gradient_loss(pred: Tensor, gt: Tensor, valid: Tensor, scales: int = 4) -> Tensor:
    """Multi-scale gradient matching ("grad" mode of VGGT): for stride s in 1, 2, 4, ... (`scales` of them), with
    d = valid * (pred - gt) on the strided maps, sum |d(x+1) - d(x)| and |d(y+1) - d(y)| over pixel pairs that are
    both valid (each clamped at 100), divide by the number of valid pixels at that stride, then average the scales.

    Args:
        pred, gt: [B, S, H, W, C]. valid: [B, S, H, W] bool.
    Returns:
        Scalar. A scale with no valid pixel contributes 0.
    """
    total = _zero(pred)
    for i in range(scales):
        s = 2**i
        p, g, m = pred[:, :, ::s, ::s], gt[:, :, ::s, ::s], valid[:, :, ::s, ::s]
        mf = m.unsqueeze(-1).to(pred.dtype)
        d = torch.where(m.unsqueeze(-1), p - g, torch.zeros_like(p))
        gx = (d[:, :, :, 1:] - d[:, :, :, :-1]).abs() * (mf[:, :, :, 1:] * mf[:, :, :, :-1])
        gy = (d[:, :, 1:] - d[:, :, :-1]).abs() * (mf[:, :, 1:] * mf[:, :, :-1])
        count = m.sum()
        if int(count) == 0:
            continue
        total = total + (gx.clamp(max=_HARD_MAX).sum() + gy.clamp(max=_HARD_MAX).sum()) / count
    return total / max(scales, 1)


def regression_loss(
    pred: Tensor,
    conf: Tensor,
    gt: Tensor,
    valid: Tensor,
    alpha: float = 0.2,
    gamma: float = 1.0,
    gradient_scales: int = 4,
    valid_range: float = 0.98,
    min_valid: int = 100,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Confidence-weighted regression (VGGT `regression_loss`) on maps with C channels.

    reg_i = ||gt_i - pred_i||_2 over channels on valid pixels; conf term = gamma * reg_i * conf_i - alpha * log(conf_i).
    Both per-pixel losses are NaN/Inf-sanitised, quantile-filtered (`filter_by_quantile`) and averaged.
    grad = `gradient_loss` with `gradient_scales` scales (0 disables it). When fewer than `min_valid` pixels are
    valid in the whole batch, all terms are 0.

    Args:
        pred, gt: [B, S, H, W, C]. conf: [B, S, H, W], > 0 (VGGT heads give 1 + exp(x)). valid: [B, S, H, W] bool.

    Returns:
        (conf + reg + grad, {"conf", "reg", "grad": detached}).
    """
    if pred.shape != gt.shape or pred.shape[:-1] != conf.shape or conf.shape != valid.shape:
        raise ValueError(
            f"shape mismatch: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, conf {tuple(conf.shape)}, "
            f"valid {tuple(valid.shape)}"
        )
    valid = valid.bool()
    pred, conf = _upcast(pred), _upcast(conf)
    gt = gt.to(pred.dtype)
    n_valid = int(valid.sum())
    if n_valid < max(min_valid, 1):
        zero = _zero(pred) + _zero(conf)
        return zero, {"conf": zero.detach(), "reg": zero.detach(), "grad": zero.detach()}
    # Replace GT at invalid pixels so NaN/Inf there cannot leak into values or gradients.
    gt = torch.where(valid.unsqueeze(-1), gt, torch.zeros_like(gt))
    reg = torch.linalg.vector_norm(gt[valid] - pred[valid], dim=-1)
    c = conf[valid]
    conf_term = gamma * reg * c - alpha * torch.log(c)
    reg_mean = filter_by_quantile(_sanitize(reg), valid_range).mean()
    conf_mean = filter_by_quantile(_sanitize(conf_term), valid_range).mean()
    grad = gradient_loss(pred, gt, valid, gradient_scales) if gradient_scales > 0 else _zero(pred)
    total = conf_mean + reg_mean + grad
    return total, {"conf": conf_mean.detach(), "reg": reg_mean.detach(), "grad": grad.detach()}


def depth_loss(
    pred: Tensor,
    conf: Tensor,
    gt: Tensor,
    valid: Tensor,
    alpha: float = 0.2,
    gradient_scales: int = 4,
    valid_range: float = 0.98,
    *,
    gamma: float = 1.0,
    min_valid: int = 100,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Depth loss of L_recon-task (VGGT depth head): `regression_loss` on depth maps.

    Args:
        pred: [B, S, H, W] (or [B, S, H, W, 1]) predicted depth. conf: [B, S, H, W] > 0.
        gt: [B, S, H, W] (or trailing 1) normalised GT depth. valid: [B, S, H, W] bool.

    Returns:
        (conf + reg + grad, {"conf", "reg", "grad"}).
    """
    if pred.dim() == 5 and pred.shape[-1] == 1:
        pred = pred[..., 0]
    if gt.dim() == 5 and gt.shape[-1] == 1:
        gt = gt[..., 0]
    if pred.dim() != 4:
        raise ValueError(f"depth must be [B, S, H, W], got {tuple(pred.shape)}")
    return regression_loss(
        pred.unsqueeze(-1), conf, gt.unsqueeze(-1), valid, alpha, gamma, gradient_scales, valid_range, min_valid
    )


def point_loss(
    pred: Tensor,
    conf: Tensor,
    gt: Tensor,
    valid: Tensor,
    alpha: float = 0.2,
    gradient_scales: int = 4,
    valid_range: float = 0.98,
    *,
    gamma: float = 1.0,
    min_valid: int = 100,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Point-map loss of L_recon-task (VGGT point head): `regression_loss` on world points (Euclidean residual).

    The gradient term is the "grad" mode on the three coordinates (VGGT's commented point config uses a normal
    based term instead; not implemented here).

    Args:
        pred, gt: [B, S, H, W, 3]. conf: [B, S, H, W] > 0. valid: [B, S, H, W] bool.

    Returns:
        (conf + reg + grad, {"conf", "reg", "grad"}).
    """
    if pred.dim() != 5 or pred.shape[-1] != 3:
        raise ValueError(f"point maps must be [B, S, H, W, 3], got {tuple(pred.shape)}")
    return regression_loss(pred, conf, gt, valid, alpha, gamma, gradient_scales, valid_range, min_valid)


# ------------------------------------------------------------------------------------------ GT normalisation
class NormalizedScene(NamedTuple):
    """Output of `normalize_gt_scene`; shapes as the inputs, scale [B]."""

    extrinsics: Tensor
    depth: Tensor
    world_points: Tensor
    cam_points: Tensor | None
    scale: Tensor


def _to_4x4(e: Tensor) -> Tensor:
    if e.shape[-2:] == (4, 4):
        return e
    bottom = torch.zeros(*e.shape[:-2], 1, 4, dtype=e.dtype, device=e.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([e, bottom], dim=-2)


def _inverse_se3(e: Tensor) -> Tensor:
    """Closed-form inverse of [R | t] (4 x 4): [R^T | -R^T t]."""
    r, t = e[..., :3, :3], e[..., :3, 3:]
    out = torch.zeros_like(e)
    out[..., :3, :3] = r.transpose(-1, -2)
    out[..., :3, 3:] = -r.transpose(-1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


def normalize_gt_scene(
    extrinsics: Tensor,
    depth: Tensor,
    world_points: Tensor,
    valid: Tensor,
    cam_points: Tensor | None = None,
    eps: float = 1e-8,
) -> NormalizedScene:
    """Express a GT scene in camera 0 and divide lengths by the mean distance of valid world points to camera 0.

    (VGGT `normalize_camera_extrinsics_and_points_batch`.) E_i' = E_i E_0^{-1}; p' = R_0 p + t_0; then translations,
    world points, camera points and depths are divided by scale = mean_{valid} ||p'||. Predictions are not
    normalised. A batch item with no valid pixel keeps scale 1.

    Args:
        extrinsics: [B, S, 3, 4] or [B, S, 4, 4] world-to-camera (OpenCV). depth: [B, S, H, W].
        world_points: [B, S, H, W, 3]. valid: [B, S, H, W] bool. cam_points: optional [B, S, H, W, 3].

    Returns:
        NormalizedScene(extrinsics (input layout), depth, world_points, cam_points or None, scale [B]).
    """
    if extrinsics.dim() != 4 or extrinsics.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"extrinsics must be [B, S, 3, 4] or [B, S, 4, 4], got {tuple(extrinsics.shape)}")
    e4 = _to_4x4(extrinsics)
    e0_inv = _inverse_se3(e4[:, :1])  # [B, 1, 4, 4]
    rel = e4 @ e0_inv
    r0, t0 = e4[:, 0, :3, :3], e4[:, 0, :3, 3]  # [B, 3, 3], [B, 3]
    pts = torch.einsum("bij,bshwj->bshwi", r0, world_points.to(r0.dtype)) + t0[:, None, None, None, :]
    valid = valid.bool()
    pts_safe = torch.where(valid.unsqueeze(-1), pts, torch.zeros_like(pts))
    dist = torch.linalg.vector_norm(pts_safe, dim=-1)  # [B, S, H, W]
    count = valid.flatten(1).sum(dim=1)
    mean_dist = dist.flatten(1).sum(dim=1) / count.clamp(min=1)
    scale = torch.where(count > 0, mean_dist.clamp(min=eps), torch.ones_like(mean_dist))
    rel = rel.clone()
    rel[..., :3, 3] = rel[..., :3, 3] / scale[:, None, None]
    out_e = rel if extrinsics.shape[-2:] == (4, 4) else rel[..., :3, :]
    s4 = scale[:, None, None, None]
    return NormalizedScene(
        extrinsics=out_e,
        depth=depth / s4,
        world_points=pts / s4[..., None],
        cam_points=None if cam_points is None else cam_points / s4[..., None],
        scale=scale,
    )
