"""nerfstudio `transforms.json` (the nerfstudio-data format); not in the paper (issue 13).

nerfstudio cameras are OpenGL-style: x right, y up, looking down -z, and `transform_matrix` is camera-to-world.
vidllm cameras are OpenCV (x right, y down, z forward), so each pose is multiplied on the right by
diag(1, -1, -1, 1) (flip the camera's y and z axes; the world is unchanged). Intrinsics use nerfstudio's (= COLMAP's)
pixel convention, origin at the corner of the top-left pixel, so `cx = c + 0.5`. The top-level
`fl_x, fl_y, cx, cy, w, h` are the median over frames; every frame also carries its own (nerfstudio lets per-frame
values override the shared ones), because the predicted intrinsics differ slightly per frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidllm_core.io import write_json_atomic

OPENCV_TO_OPENGL_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_camera_to_world(camera_to_world: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world [S,4,4] -> OpenGL (nerfstudio / NeRF) camera-to-world [S,4,4]."""
    return np.asarray(camera_to_world, dtype=np.float64) @ OPENCV_TO_OPENGL_CAMERA


def _intrinsics(K: np.ndarray, width: int, height: int) -> dict[str, float]:
    return {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]) + 0.5, "cy": float(K[1, 2]) + 0.5,
            "w": int(width), "h": int(height)}


def write_transforms_json(path: str | os.PathLike, *, camera_to_world: np.ndarray, intrinsics: np.ndarray,
                          width: int, height: int, file_paths: Sequence[str], ply_file_path: str | None = None,
                          extra: dict[str, Any] | None = None) -> None:
    """Write `transforms.json`: camera_to_world [S,4,4] OpenCV, intrinsics [S,3,3] at width x height, file_paths [S]
    relative to the JSON's folder; `ply_file_path` (relative) points splatfacto at an initial point cloud."""
    K = np.asarray(intrinsics, dtype=np.float64)
    poses = opengl_camera_to_world(camera_to_world)
    doc: dict[str, Any] = {"camera_model": "OPENCV", **_intrinsics(np.median(K, axis=0), width, height),
                           "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
    if ply_file_path is not None:
        doc["ply_file_path"] = ply_file_path
    doc.update(extra or {})
    doc["frames"] = [{"file_path": name, "transform_matrix": pose.tolist(), **_intrinsics(k, width, height)}
                     for name, pose, k in zip(file_paths, poses, K)]
    write_json_atomic(path, doc)
