"""Metric depth loss L_MD: Vid-LLM paper Sec. 3.4, Eq. 9 (global scale penalty b^2 + robust local refinement).

Named dimensions: B images, H x W pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["metric_depth_loss"]


def metric_depth_loss(pred: Tensor, gt: Tensor, valid: Tensor, alpha: float, eps: float) -> Tensor:
    """L_MD of Eq. 9, per image, averaged over the images that have at least one valid pixel.

    For the K valid pixels of an image: e_i = log(pred_i + eps) - log(gt_i + eps), b = mean_i e_i,
    L = b^2 + (1/K) sum_i (e_i - b)^2 / (1 + alpha |e_i - b|).

    Invalid pixels never enter the value or the gradient (their inputs are replaced before the log, so NaN, Inf or
    zero there do no harm). An image with no valid pixel contributes nothing; a batch with none gives 0 (attached
    to the graph, so backward() works). `pred` must be > -eps on valid pixels (metric heads output positive depth).

    Args:
        pred: [B, H, W] predicted metric depth. gt: [B, H, W] metric GT depth. valid: [B, H, W] bool.
        alpha: robustness (>= 0; the paper requires > 0, 0 gives a plain variance term). eps: log offset (>= 0).

    Returns:
        Scalar.
    """
    if alpha < 0 or eps < 0:
        raise ValueError(f"alpha and eps must be non-negative, got alpha={alpha}, eps={eps}")
    if pred.shape != gt.shape or pred.shape != valid.shape:
        raise ValueError(f"shape mismatch: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, valid {tuple(valid.shape)}")
    if pred.dim() == 2:
        pred, gt, valid = pred[None], gt[None], valid[None]
    valid = valid.bool()
    if pred.dtype in (torch.float16, torch.bfloat16):
        pred = pred.float()  # logs and means in float32 under autocast
    flat_valid = valid.flatten(1)
    one = torch.ones_like(pred)
    p = torch.where(valid, pred, one).flatten(1)
    g = torch.where(valid, gt.to(pred.dtype), one).flatten(1)
    e = torch.where(flat_valid, torch.log(p + eps) - torch.log(g + eps), torch.zeros_like(p))
    k = flat_valid.sum(dim=1)  # [B]
    k_safe = k.clamp(min=1).to(pred.dtype)
    b = e.sum(dim=1) / k_safe  # [B]
    r = torch.where(flat_valid, e - b[:, None], torch.zeros_like(e))
    robust = (r.pow(2) / (1.0 + alpha * r.abs())).sum(dim=1) / k_safe
    per_image = b.pow(2) + robust  # [B]; exactly 0 where k == 0
    has_valid = k > 0
    n_img = int(has_valid.sum())
    if n_img == 0:
        return pred.sum() * 0.0
    return per_image.sum() / n_img
