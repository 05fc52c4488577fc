"""Gravity alignment of a reconstruction (issue 5, `--gravity-align`): floor plane + up axis -> z up, floor at z = 0.

Method: the cameras' average "down" direction (OpenCV +y of each camera, in world coordinates) gives a first up
axis; among the lowest 30 % of the confident points along it, a RANSAC plane whose normal lies within 30 degrees of
that axis is fitted (then refined by least squares on its inliers). Its normal, oriented towards the cameras, is
the up axis; the rotation taking it to +z (smallest rotation, scipy `align_vectors`) and the shift putting the floor
inliers' median at z = 0 give the transform. Without a plane (too few points) the camera axis and the 2nd
height percentile are used. Yaw stays as it was (x stays as close as possible to the first camera's x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from vidllm_core.geometry.unproject import confidence_mask
from vidllm_core.models.vidllm import SceneGeometry

__all__ = ["GravityAlignment", "estimate_gravity", "gravity_from_geometry", "transform_points",
           "box_corners"]


@dataclass(frozen=True)
class GravityAlignment:
    """transform [4, 4] (aligned-from-world), method ("ransac" | "cameras"), inliers (floor points), up [3] in the
    original world frame."""

    transform: np.ndarray
    method: str
    inliers: int
    up: np.ndarray


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points [..., 3]."""
    return points @ transform[:3, :3].T + transform[:3, 3]


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners [K, 8, 3] of axis-aligned boxes [K, 6]; corner bits (x, y, z) = (i & 1, i & 2, i & 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    signs = np.array([[(i & 1) * 2 - 1, ((i >> 1) & 1) * 2 - 1, ((i >> 2) & 1) * 2 - 1] for i in range(8)], float)
    return boxes[:, None, :3] + 0.5 * signs[None] * boxes[:, None, 3:]


def _rotation_to_z(up: np.ndarray) -> np.ndarray:
    rot, _ = Rotation.align_vectors([[0.0, 0.0, 1.0]], [up])
    return rot.as_matrix()


def estimate_gravity(points: np.ndarray, camera_down: np.ndarray, camera_centres: np.ndarray | None = None,
                     seed: int = 0, iterations: int = 256, max_points: int = 20000,
                     max_tilt_deg: float = 30.0) -> GravityAlignment:
    """Floor plane + up axis from world points [N, 3] and the mean camera down direction [3] (see module doc)."""
    rng = np.random.default_rng(seed)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(1)]
    down = np.asarray(camera_down, dtype=np.float64)
    up = -down / max(np.linalg.norm(down), 1e-12)
    if len(pts) > max_points:
        pts = pts[rng.choice(len(pts), max_points, replace=False)]
    method, inliers = "cameras", 0
    if len(pts) >= 30:
        height = pts @ up
        low = pts[height <= np.percentile(height, 30)]
        extent = float(np.percentile(height, 98) - np.percentile(height, 2))
        tol = max(0.02, 0.01 * extent)
        cos_max = np.cos(np.radians(max_tilt_deg))
        best: np.ndarray | None = None
        best_count = 0
        for _ in range(iterations):
            a, b, c = low[rng.choice(len(low), 3, replace=False)]
            n = np.cross(b - a, c - a)
            norm = np.linalg.norm(n)
            if norm < 1e-12:
                continue
            n /= norm
            if abs(n @ up) < cos_max:
                continue
            mask = np.abs((low - a) @ n) < tol
            count = int(mask.sum())
            if count > best_count:
                best, best_count = mask, count
        if best is not None and best_count >= 10:
            floor = low[best]
            centre = floor.mean(0)
            _, _, vt = np.linalg.svd(floor - centre, full_matrices=False)
            n = vt[-1]
            up = n if n @ up > 0 else -n
            method, inliers = "ransac", best_count
            offset = float(np.median(floor @ up))
        else:
            offset = float(np.percentile(height, 2))
    else:
        offset = float(np.min(pts @ up)) if len(pts) else 0.0
    if camera_centres is not None and method == "ransac":
        cams = np.asarray(camera_centres, dtype=np.float64).reshape(-1, 3)
        if len(cams) and np.median(cams @ up) < offset:  # the cameras must be above the floor
            up, offset = -up, -offset
    rot = _rotation_to_z(up)
    transform = np.eye(4)
    transform[:3, :3] = rot
    transform[2, 3] = -offset
    return GravityAlignment(transform, method, inliers, up)


def gravity_from_geometry(geometry: SceneGeometry, seed: int = 0) -> GravityAlignment:
    """`estimate_gravity` on a reconstruction's confident points (confidence >= median) and its cameras."""
    ext = geometry.extrinsic.double().cpu().numpy()  # [S, 3, 4] camera-from-world
    rot, trans = ext[:, :, :3], ext[:, :, 3]
    down = rot[:, 1, :].mean(0)  # camera +y (image down) in world = row 1 of R
    centres = -np.einsum("sji,sj->si", rot, trans)  # C = -R^T t
    pts = geometry.world_points.reshape(-1, 3).double().cpu().numpy()
    conf = geometry.depth_conf.reshape(-1).double().cpu().numpy()
    keep = confidence_mask(conf, 50.0)   # the confident half
    return estimate_gravity(pts[keep], down, centres, seed=seed)
