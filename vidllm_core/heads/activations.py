"""Output activations of the VGGT heads (VGGT heads/head_act.py): pose parts, dense values and confidences."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DENSE_ACTIVATIONS = ("exp", "inv_log", "norm_exp", "norm", "relu", "sigmoid", "linear")
CONF_ACTIVATIONS = ("expp1", "expp0", "sigmoid")
POSE_ACTIVATIONS = ("linear", "inv_log", "exp", "relu")


def inverse_log_transform(y: torch.Tensor) -> torch.Tensor:
    """``sign(y) * (exp(|y|) - 1)``."""
    return torch.sign(y) * torch.expm1(torch.abs(y))


def _pose_part(x: torch.Tensor, act: str) -> torch.Tensor:
    if act == "linear":
        return x
    if act == "inv_log":
        return inverse_log_transform(x)
    if act == "exp":
        return torch.exp(x)
    if act == "relu":
        return F.relu(x)
    raise ValueError(f"unknown pose activation {act!r} (expected one of {POSE_ACTIVATIONS})")


def activate_pose(
    pose_enc: torch.Tensor, trans_act: str = "linear", quat_act: str = "linear", fl_act: str = "linear"
) -> torch.Tensor:
    """Activate a raw 9-d pose encoding ``[..., 9]``: T[0:3], quaternion[3:7], FoV[7:9] separately."""
    return torch.cat(
        (
            _pose_part(pose_enc[..., :3], trans_act),
            _pose_part(pose_enc[..., 3:7], quat_act),
            _pose_part(pose_enc[..., 7:], fl_act),
        ),
        dim=-1,
    )


def activate_dense(x: torch.Tensor, activation: str) -> torch.Tensor:
    """Activate dense values ``[..., D]`` (channels last)."""
    if activation == "exp":
        return torch.exp(x)
    if activation == "inv_log":
        return inverse_log_transform(x)
    if activation == "norm_exp":
        d = x.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        return x / d * torch.expm1(d)
    if activation == "norm":
        return x / x.norm(dim=-1, keepdim=True)
    if activation == "relu":
        return F.relu(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "linear":
        return x
    raise ValueError(f"unknown dense activation {activation!r} (expected one of {DENSE_ACTIVATIONS})")


def activate_conf(c: torch.Tensor, activation: str) -> torch.Tensor:
    """Activate a confidence map: ``expp1`` = 1 + exp(c), ``expp0`` = exp(c), ``sigmoid``."""
    if activation == "expp1":
        return 1 + c.exp()
    if activation == "expp0":
        return c.exp()
    if activation == "sigmoid":
        return torch.sigmoid(c)
    raise ValueError(f"unknown confidence activation {activation!r} (expected one of {CONF_ACTIVATIONS})")


def activate_head(
    out: torch.Tensor, activation: str = "exp", conf_activation: str = "expp1"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``out [N, D+1, H, W]`` -> (values ``[N, H, W, D]``, confidence ``[N, H, W]``); the last channel is the confidence."""
    fmap = out.permute(0, 2, 3, 1)
    return activate_dense(fmap[..., :-1], activation), activate_conf(fmap[..., -1], conf_activation)
