"""Camera pose accuracy: pairwise RRA@k / RTA@k and AUC@30 (mAA) in the VGGT Co3D convention.

Reference: METRICS.md sec. 6 (VGGT `evaluation/test_co3d.py`; PoseDiffusion `pose_diffusion/util/metric.py`:
`compare_translation_by_angle`, `calculate_auc_np`); paper sec. 4 camera-pose evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidllm_core.errors import DataError

__all__ = ["pose_auc", "pose_errors", "pose_metrics", "pose_scores_from_errors"]

Convention = Literal["vggt", "posediffusion"]


def _check_poses(poses: ArrayLike, name: str) -> NDArray[np.float64]:
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] not in ((4, 4), (3, 4)):
        raise DataError(f"{name}: expected (N, 4, 4) or (N, 3, 4) world-to-camera matrices, got shape {p.shape}")
    if p.shape[1] == 3:
        bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (len(p), 1, 4))
        p = np.concatenate([p, bottom], axis=1)
    if not np.isfinite(p).all():
        raise DataError(f"{name}: poses contain NaN or inf")
    return p


def pose_errors(
    pred_w2c: ArrayLike, gt_w2c: ArrayLike, convention: Convention = "vggt"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-pair rotation and translation-direction errors in degrees over all pairs i < j.

    pred_w2c, gt_w2c: (N, 4, 4) (or (N, 3, 4)) world-to-camera, OpenCV axes, same frame order.
    vggt: relative pose w2c_i @ inv(w2c_j); posediffusion: w2c_j @ inv(w2c_i) (same rotation error, different
    translation when rotations are wrong). Rotation error = geodesic angle (float64); translation error = angle
    between directions with the sign ignored, in [0, 90] (zero vector -> 90; NaN -> 1e6 rad as upstream).
    Returns (rErr (N(N-1)/2,), tErr (N(N-1)/2,)).
    """
    pred, gt = _check_poses(pred_w2c, "pred"), _check_poses(gt_w2c, "gt")
    if len(pred) != len(gt):
        raise DataError(f"{len(pred)} predicted poses for {len(gt)} ground-truth poses")
    if len(gt) < 2:
        raise DataError("pose metrics need at least 2 frames (errors are over pairs of frames)")
    i, j = np.triu_indices(len(gt), k=1)  # same order as torch.combinations
    if convention == "vggt":
        rel_gt, rel_pred = gt[i] @ np.linalg.inv(gt[j]), pred[i] @ np.linalg.inv(pred[j])
    elif convention == "posediffusion":
        rel_gt, rel_pred = gt[j] @ np.linalg.inv(gt[i]), pred[j] @ np.linalg.inv(pred[i])
    else:
        raise DataError(f"unknown pose convention {convention!r}; use 'vggt' or 'posediffusion'")
    r_rel = np.swapaxes(rel_gt[:, :3, :3], 1, 2) @ rel_pred[:, :3, :3]
    cos = np.clip((np.trace(r_rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    r_err = np.degrees(np.arccos(cos))
    t_err = np.degrees(_translation_angle(rel_gt[:, :3, 3], rel_pred[:, :3, 3]))
    return r_err, t_err


def _translation_angle(t_gt: NDArray, t_pred: NDArray, eps: float = 1e-15, default_err: float = 1e6) -> NDArray:
    t = t_pred / (np.linalg.norm(t_pred, axis=1, keepdims=True) + eps)
    g = t_gt / (np.linalg.norm(t_gt, axis=1, keepdims=True) + eps)
    loss = np.maximum(1.0 - np.sum(t * g, axis=1) ** 2, eps)
    with np.errstate(invalid="ignore"):
        err = np.arccos(np.sqrt(1.0 - loss))
    err[~np.isfinite(err)] = default_err
    return err


def pose_auc(r_err: ArrayLike, t_err: ArrayLike, max_threshold: int = 30) -> float:
    """VGGT / PoseDiffusion AUC@max_threshold: mean over 1-degree bins of the cumulative fraction of pairs with
    max(rErr, tErr) below the bin edge (np.histogram, so an error equal to the threshold lands in the last bin)."""
    errs = np.maximum(np.asarray(r_err, dtype=np.float64), np.asarray(t_err, dtype=np.float64))
    if errs.size == 0:
        raise DataError("no pose pairs to score")
    hist, _ = np.histogram(errs, bins=np.arange(max_threshold + 1))
    return float(np.mean(np.cumsum(hist.astype(np.float64) / float(len(errs)))))


def pose_scores_from_errors(
    r_err: ArrayLike,
    t_err: ArrayLike,
    thresholds: Sequence[float] = (5, 15, 30),
    auc_thresholds: Sequence[int] = (5, 15, 30),
) -> dict:
    """RRA@k = mean(rErr < k), RTA@k = mean(tErr < k), AUC@k; use it to pool the pairs of several sequences."""
    r = np.asarray(r_err, dtype=np.float64).reshape(-1)
    t = np.asarray(t_err, dtype=np.float64).reshape(-1)
    if len(r) != len(t) or len(r) == 0:
        raise DataError(f"need the same non-zero number of rotation ({len(r)}) and translation ({len(t)}) errors")
    out: dict = {}
    for k in thresholds:
        out[f"RRA@{k:g}"] = float(np.mean(r < k))
        out[f"RTA@{k:g}"] = float(np.mean(t < k))
    for k in auc_thresholds:
        out[f"AUC@{k:g}"] = pose_auc(r, t, int(k))
    out["n_pairs"] = int(len(r))
    return out


def pose_metrics(
    pred_w2c: ArrayLike,
    gt_w2c: ArrayLike,
    thresholds: Sequence[float] = (5, 15, 30),
    auc_thresholds: Sequence[int] = (5, 15, 30),
    convention: Convention = "vggt",
) -> dict:
    """RRA@{5,15,30}, RTA@{5,15,30}, AUC@{5,15,30} and n_pairs of one sequence (VGGT convention by default).

    The headline numbers of the paper / VGGT are RRA@15, RTA@15 and AUC@30. To pool several sequences as VGGT
    does per category, concatenate `pose_errors` outputs and call `pose_scores_from_errors`.
    """
    r_err, t_err = pose_errors(pred_w2c, gt_w2c, convention)
    return pose_scores_from_errors(r_err, t_err, thresholds, auc_thresholds)
