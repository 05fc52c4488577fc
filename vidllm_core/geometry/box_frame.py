"""The frame grounding boxes live in (not in the paper; issue 12, docs/DESIGN.md "Grounding box frame").

Boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in a *box frame*: z up (gravity), x along the room axis (a wall
direction, modulo 90 degrees) nearest to the first camera's right axis, origin at the first camera's centre. Every
benchmark box frame we score in (ScanNet's axis-aligned frame, synthrooms' z-up world) is gravity-aligned with walls
along its axes, so a box that is axis-aligned there is axis-aligned in the box frame too: the two differ by a turn
of k * 90 degrees about z plus a shift, a map that sends axis-aligned boxes to axis-aligned boxes exactly (sizes are
permuted, never inflated). The reconstruction's own world (the first camera, pitched and rolled) is NOT such a
frame; the model's 3D token positions are moved into the box frame before the grounding head sees them.

Where the frame comes from: training and `vidllm eval` know the map reconstruction -> benchmark frame (GT pose of the
first camera and the scene's axis alignment), so the box frame is derived from it (`box_frame_from_scene`). On a
raw video (`vidllm ground`) it is estimated from the reconstruction (`estimate_box_frame`): up from the floor plane
and the cameras (`pipelines.gravity`), yaw from the dominant wall normals (4-fold circular mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidllm_core.geometry.unproject import confidence_mask

__all__ = ["BoxFrame", "box_frame_from_scene", "dominant_yaw", "estimate_box_frame", "quarter_turn"]

MAX_NORMAL_PIXELS = 250_000  # surface normals for the wall direction are computed on at most about this many pixels


def quarter_turn(k: int) -> np.ndarray:
    """Exact integer rotation [3, 3] by k * 90 degrees about +z."""
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][int(k) % 4]
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class BoxFrame:
    """A box frame (module doc) relative to a gravity-aligned, wall-aligned reference frame ("scene frame").

    scene_from_world [4, 4]: reconstruction world -> scene frame (rigid). turns: the box frame's x is the scene's
    axis turned by `turns` * 90 degrees about z. origin [3]: the box frame's origin in the scene frame.
    source: "scene-alignment" (from a known benchmark frame) or "estimated" (floor + walls of the reconstruction).
    """

    scene_from_world: np.ndarray
    turns: int
    origin: np.ndarray
    source: str

    @property
    def box_from_scene(self) -> np.ndarray:
        """[4, 4] scene frame -> box frame: an exact quarter turn about z and a shift."""
        rot = quarter_turn(self.turns).T
        out = np.eye(4)
        out[:3, :3] = rot
        out[:3, 3] = -rot @ np.asarray(self.origin, dtype=np.float64)
        return out

    @property
    def box_from_world(self) -> np.ndarray:
        """[4, 4] reconstruction world -> box frame (where the model's token positions go)."""
        return self.box_from_scene @ np.asarray(self.scene_from_world, dtype=np.float64)

    def boxes_from_scene(self, boxes: Any) -> np.ndarray:
        """Axis-aligned boxes [K, 6] in the scene frame -> the same boxes in the box frame (exact)."""
        return _quarter_turn_boxes(boxes, quarter_turn(self.turns).T, self.box_from_scene[:3, 3])

    def boxes_to_scene(self, boxes: Any) -> np.ndarray:
        """Axis-aligned boxes [K, 6] in the box frame -> the scene frame (exact inverse of `boxes_from_scene`)."""
        return _quarter_turn_boxes(boxes, quarter_turn(self.turns), np.asarray(self.origin, dtype=np.float64))

    def points_from_world(self, xyz: Any) -> Any:
        """Points [..., 3] (numpy or torch) of the reconstruction world -> the box frame."""
        t = self.box_from_world
        if isinstance(xyz, np.ndarray):
            return xyz @ t[:3, :3].T + t[:3, 3]
        import torch

        rot = torch.as_tensor(t[:3, :3], dtype=xyz.dtype, device=xyz.device)
        shift = torch.as_tensor(t[:3, 3], dtype=xyz.dtype, device=xyz.device)
        return xyz @ rot.T + shift

    def describe(self) -> dict[str, Any]:
        """What an output file says about its frame."""
        return {"name": "box frame: z up (gravity), x along the room axis nearest the first camera's right axis, "
                        "origin at the first camera; axis-aligned boxes [cx, cy, cz, dx, dy, dz] in metres",
                "source": self.source,
                "box_from_reconstruction": np.round(self.box_from_world, 9).tolist()}


def _quarter_turn_boxes(boxes: Any, rot: np.ndarray, shift: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    centres = b[:, :3] @ rot.T + shift
    sizes = b[:, 3:] @ np.abs(rot).T  # a quarter turn permutes the edges
    return np.concatenate([centres, sizes], axis=1)


def box_frame_from_scene(scene_from_world: Any, source: str = "scene-alignment") -> BoxFrame:
    """The box frame of a reconstruction whose map into a gravity- and wall-aligned scene frame is known.

    `scene_from_world` [4, 4] maps reconstruction-world points (world = first camera, OpenCV axes) into the scene
    frame (z up). The box frame keeps the scene's axes up to the quarter turn that brings x closest to the first
    camera's right axis (projected on the floor); its origin is the first camera's centre.
    """
    t = np.asarray(scene_from_world, dtype=np.float64)
    if t.shape != (4, 4) or not np.isfinite(t).all():
        raise ValueError(f"scene_from_world must be a finite 4x4 matrix, got shape {t.shape}")
    right = t[:3, 0]  # the first camera's x axis in the scene frame
    heading = math.atan2(right[1], right[0]) if np.hypot(right[0], right[1]) > 1e-9 else 0.0
    turns = int(round(heading / (math.pi / 2))) % 4
    return BoxFrame(t, turns, t[:3, 3].copy(), source)


def dominant_yaw(normals: np.ndarray, weights: np.ndarray | None = None, max_slope: float = 0.3) -> float:
    """Wall direction (radians, in [-pi/4, pi/4)) from unit normals [N, 3] of a z-up frame: the 4-fold circular mean
    of the near-horizontal normals (|n_z| < max_slope), so walls at right angles vote for the same yaw. 0 when no
    normal is near-horizontal."""
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    w = np.ones(len(n)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    keep = np.isfinite(n).all(1) & (np.abs(n[:, 2]) < max_slope) & np.isfinite(w)
    if not keep.any():
        return 0.0
    ang = 4.0 * np.arctan2(n[keep, 1], n[keep, 0])
    w = w[keep] * np.hypot(n[keep, 0], n[keep, 1])
    mean = math.atan2(float((w * np.sin(ang)).sum()), float((w * np.cos(ang)).sum())) / 4.0
    return (mean + math.pi / 4) % (math.pi / 2) - math.pi / 4


def _grid_normals(points: np.ndarray) -> np.ndarray:
    """Unit normals [S, H-1, W-1, 3] of per-pixel point maps [S, H, W, 3] (cross product of pixel neighbours)."""
    du = points[:, :-1, 1:] - points[:, :-1, :-1]
    dv = points[:, 1:, :-1] - points[:, :-1, :-1]
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-12, n / np.where(norm > 1e-12, norm, 1.0), np.nan)


def estimate_box_frame(geometry: Any, seed: int = 0) -> BoxFrame:
    """The box frame of a reconstruction without any benchmark frame (`vidllm ground` on a video).

    Up and floor from `pipelines.gravity.gravity_from_geometry`; yaw from `dominant_yaw` of the confident pixels'
    surface normals in that gravity-aligned frame; then `box_frame_from_scene` on the result (source "estimated").
    """
    from vidllm_core.pipelines.gravity import gravity_from_geometry

    grav = gravity_from_geometry(geometry, seed=seed).transform
    frames, h, w = geometry.world_points.shape[:3]
    step = max(1, int(math.sqrt(frames * h * w / MAX_NORMAL_PIXELS)))  # neighbours `step` pixels apart: bounded cost
    pts = geometry.world_points[:, ::step, ::step].double().cpu().numpy()
    conf = geometry.depth_conf[:, ::step, ::step].double().cpu().numpy()[:, :-1, :-1]
    aligned = pts @ grav[:3, :3].T
    normals = _grid_normals(aligned)
    keep = confidence_mask(conf, 50.0)   # the confident half
    yaw = dominant_yaw(normals[keep], conf[keep])
    turn = np.eye(4)
    c, s = math.cos(-yaw), math.sin(-yaw)
    turn[:2, :2] = [[c, -s], [s, c]]
    return box_frame_from_scene(turn @ grav, source="estimated")
