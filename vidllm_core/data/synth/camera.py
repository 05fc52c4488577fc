"""Pinhole intrinsics and a smooth hand-held camera walk through a synthrooms scene.

Reference: issue 3 item 3; poses follow the ScanNet posed-images convention (FORMATS.md sec. 8.2): 4x4
camera-to-world, OpenCV camera axes (x right, y down, z forward), world z up.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import CubicSpline

from vidllm_core.data.synth.scene import Scene

HFOV_DEG = 60.0  # close to ScanNet's colour camera (fx 1170 at 1296 px wide = 58 degrees)
NEAR = 0.05


def intrinsics(width: int, height: int, hfov_deg: float = HFOV_DEG) -> np.ndarray:
    """3x3 K with square pixels; pixel index (u, v) is the ray through x = (u - cx) / fx (ScanNet unprojection)."""
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def look_rotation(forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (columns = camera x right, y down, z forward) for a world forward vector."""
    f = forward / np.linalg.norm(forward)
    r = np.cross(f, np.array([0.0, 0.0, 1.0]))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    c, s = math.cos(roll), math.sin(roll)
    r, d = c * r + s * d, -s * r + c * d
    return np.stack([r, d, f], axis=1)


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, amp: float, n: int = 3) -> np.ndarray:
    out = np.zeros_like(t)
    for k in range(n):
        freq = rng.uniform(0.5, 3.0) * (k + 1)
        out += amp / (k + 1) * np.sin(2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi))
    return out


def free_points(scene: Scene, xy: np.ndarray, clearance: float, wall: float) -> np.ndarray:
    """(N,) bool: points at least `clearance` from every object footprint (except windows) and `wall` from walls."""
    ok = (xy[:, 0] > wall) & (xy[:, 0] < scene.room.width - wall) & (xy[:, 1] > wall) & (xy[:, 1] < scene.room.depth - wall)
    for o in scene.objects:
        if o.category == "window" or o.support is not None:
            continue
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        rel = xy - o.position[:2]
        lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
        dx = np.maximum(np.abs(lx) - o.size[0] / 2, 0)
        dy = np.maximum(np.abs(ly) - o.size[1] / 2, 0)
        ok &= np.hypot(dx, dy) > clearance
    return ok


def _waypoints(rng: np.random.Generator, scene: Scene, k: int, phase: float) -> np.ndarray | None:
    """(k, 2) loop of floor points with the most clearance in each of k angular sectors around the room centre."""
    from scipy.ndimage import distance_transform_edt

    room = scene.room
    res = 0.1
    xs, ys = np.arange(res / 2, room.width, res), np.arange(res / 2, room.depth, res)
    grid = np.stack(np.meshgrid(xs, ys), -1)
    free = free_points(scene, grid.reshape(-1, 2), 0.25, 0.45).reshape(grid.shape[:2])
    if not free.any():
        return None
    clear = np.minimum(distance_transform_edt(free) * res, 0.8)
    centre = np.array([room.width, room.depth]) / 2
    rel = (grid - centre) / (centre - 0.3)
    ang = np.mod(np.arctan2(rel[..., 1], rel[..., 0]) - phase, 2 * math.pi)
    sector = np.floor(ang / (2 * math.pi / k)).astype(int)
    score = clear - 0.6 * np.abs(np.linalg.norm(rel, axis=-1) - rng.uniform(0.45, 0.7)) + rng.uniform(0, 0.05, free.shape)
    pts = []
    for b in range(k):
        m = free & (sector == b)
        if m.any():
            i = np.argmax(np.where(m, score, -np.inf))
            pts.append(grid.reshape(-1, 2)[i])
    keep: list[np.ndarray] = []
    for p in pts:  # drop waypoints crowding their predecessor (they make the spline kink)
        if not keep or np.linalg.norm(p - keep[-1]) > 0.8:
            keep.append(p)
    if len(keep) > 1 and np.linalg.norm(keep[0] - keep[-1]) <= 0.8:
        keep.pop()
    return np.array(keep) if len(keep) >= 4 else None


def sample_trajectory(rng: np.random.Generator, scene: Scene, n_frames: int) -> np.ndarray:
    """(n_frames, 4, 4) camera-to-world poses: a loop around the room centre at 1.2-1.8 m, looking inward and down."""
    room = scene.room
    centre = np.array([room.width / 2, room.depth / 2])
    best, best_score = None, -1.0
    for attempt in range(40):
        scale = rng.uniform(0.4, 0.8) if attempt < 25 else rng.uniform(0.15, 0.5)
        k = 8
        phase = rng.uniform(0, 2 * math.pi)
        ang = phase + np.linspace(0, 2 * math.pi, k, endpoint=False)
        radii = scale * rng.uniform(0.85, 1.15, k)
        shift = rng.uniform(-0.2, 0.2, 2) * np.array([room.width, room.depth]) * (attempt > 5)
        ctrl = centre + shift + np.stack([np.cos(ang) * radii * (room.width / 2 - 0.5),
                                          np.sin(ang) * radii * (room.depth / 2 - 0.5)], 1)
        if attempt % 2 == 1:  # alternatively: waypoints picked in free space, one per angular sector
            way = _waypoints(rng, scene, k, phase)
            if way is not None:
                ctrl = way
        ctrl = np.concatenate([ctrl, ctrl[:1]])
        spline = CubicSpline(np.linspace(0, 1, len(ctrl)), ctrl, bc_type="periodic")
        span = rng.uniform(0.7, 1.0)
        t = np.linspace(0, span, n_frames)
        xy = spline(t)
        dense = spline(np.linspace(0, span, 4 * n_frames))
        score = free_points(scene, dense, 0.15, 0.35).mean()
        if score > best_score:
            best, best_score = (xy, t), score
        if score == 1.0:
            break
    xy, t = best
    hmean = rng.uniform(1.3, 1.7)
    height = np.clip(hmean + _smooth_noise(rng, t, 0.05), 1.2, 1.8)
    pos = np.concatenate([xy + np.stack([_smooth_noise(rng, t, 0.015), _smooth_noise(rng, t, 0.015)], 1),
                          height[:, None]], 1)
    pos[:, 0] = np.clip(pos[:, 0], 0.3, room.width - 0.3)
    pos[:, 1] = np.clip(pos[:, 1], 0.3, room.depth - 0.3)
    # look across the room: at a point beyond the centre, swept left/right, at table height
    sweep = _smooth_noise(rng, t, math.radians(40), n=2)
    away = centre - pos[:, :2]
    base_yaw = np.arctan2(away[:, 1], away[:, 0]) + sweep
    reach = np.linalg.norm(away, axis=1) + 0.35 * min(room.width, room.depth)
    target_z = rng.uniform(0.4, 0.8)
    pitch = np.arctan2(target_z - pos[:, 2], reach) + _smooth_noise(rng, t, math.radians(3))
    pitch = np.clip(pitch, math.radians(-45), math.radians(-8))
    yaw = base_yaw
    roll = _smooth_noise(rng, t, math.radians(2.0))
    poses = np.tile(np.eye(4), (n_frames, 1, 1))
    for i in range(n_frames):
        fwd = np.array([math.cos(pitch[i]) * math.cos(yaw[i]), math.cos(pitch[i]) * math.sin(yaw[i]), math.sin(pitch[i])])
        poses[i, :3, :3] = look_rotation(fwd, roll[i])
        poses[i, :3, 3] = pos[i]
    return poses
