"""Pose encoding absT_quaR_FoV <-> OpenCV camera-from-world extrinsics and pinhole intrinsics (VGGT Sec. 3.1).

Convention: extrinsic ``[R | t]`` maps world to camera (x right, y down, z forward); quaternion scalar-last
``(qx, qy, qz, qw)``; encoding ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` with fov_h (index 7) vertical.
"""

from __future__ import annotations

import torch


def quat_to_mat(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions ``[..., 4]`` (XYZW, any norm) -> rotation matrices ``[..., 3, 3]``."""
    x, y, z, w = quat.unbind(-1)
    two_s = 2.0 / (quat * quat).sum(-1)
    m = torch.stack(
        (
            1 - two_s * (y * y + z * z),
            two_s * (x * y - z * w),
            two_s * (x * z + y * w),
            two_s * (x * y + z * w),
            1 - two_s * (x * x + z * z),
            two_s * (y * z - x * w),
            two_s * (x * z - y * w),
            two_s * (y * z + x * w),
            1 - two_s * (x * x + y * y),
        ),
        dim=-1,
    )
    return m.reshape(*quat.shape[:-1], 3, 3)


def mat_to_quat(mat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` XYZW with ``qw >= 0``.

    Numerically stable: each of the four candidate formulas is computed and, per matrix, the one with the
    largest denominator is kept.
    """
    m = mat
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4*q_i^2 for (w, x, y, z)
    sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1
    )
    r = torch.sqrt(sq.clamp(min=0.0))  # 2*|q_i|
    # candidates (x, y, z, w) scaled so that the chosen component is r/2
    cands = torch.stack(
        (
            torch.stack((m21 - m12, m02 - m20, m10 - m01, r[..., 0] ** 2), dim=-1),
            torch.stack((r[..., 1] ** 2, m10 + m01, m02 + m20, m21 - m12), dim=-1),
            torch.stack((m10 + m01, r[..., 2] ** 2, m21 + m12, m02 - m20), dim=-1),
            torch.stack((m02 + m20, m21 + m12, r[..., 3] ** 2, m10 - m01), dim=-1),
        ),
        dim=-2,
    )  # [..., 4, 4]
    cands = cands / (2.0 * r[..., None].clamp(min=0.1))
    best = sq.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., 3:] < 0, -q, q)


def pose_encoding_to_extri_intri(
    pose_enc: torch.Tensor, image_size_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pose_enc [..., 9]`` -> (extrinsics ``[..., 3, 4]`` camera-from-world, intrinsics ``[..., 3, 3]``).

    ``fy = (H/2) / tan(fov_h/2)``, ``fx = (W/2) / tan(fov_w/2)``, principal point ``(W/2, H/2)``.
    """
    h, w = image_size_hw
    t, q, fov_h, fov_w = pose_enc[..., :3], pose_enc[..., 3:7], pose_enc[..., 7], pose_enc[..., 8]
    extrinsics = torch.cat((quat_to_mat(q), t[..., None]), dim=-1)
    fy = (h / 2.0) / torch.tan(fov_h / 2.0)
    fx = (w / 2.0) / torch.tan(fov_w / 2.0)
    intrinsics = torch.zeros(*pose_enc.shape[:-1], 3, 3, device=pose_enc.device, dtype=pose_enc.dtype)
    intrinsics[..., 0, 0] = fx
    intrinsics[..., 1, 1] = fy
    intrinsics[..., 0, 2] = w / 2.0
    intrinsics[..., 1, 2] = h / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def extri_intri_to_pose_encoding(
    extrinsics: torch.Tensor, intrinsics: torch.Tensor, image_size_hw: tuple[int, int]
) -> torch.Tensor:
    """(extrinsics ``[..., 3, 4]`` camera-from-world, intrinsics ``[..., 3, 3]``) -> ``pose_enc [..., 9]``.

    ``fov_h = 2 atan((H/2) / fy)``, ``fov_w = 2 atan((W/2) / fx)``; the quaternion has ``qw >= 0``.
    """
    h, w = image_size_hw
    quat = mat_to_quat(extrinsics[..., :3, :3])
    t = extrinsics[..., :3, 3]
    fov_h = 2 * torch.atan((h / 2.0) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((w / 2.0) / intrinsics[..., 0, 0])
    return torch.cat((t, quat, fov_h[..., None], fov_w[..., None]), dim=-1)
