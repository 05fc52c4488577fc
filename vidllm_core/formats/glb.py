"""GLB (binary glTF) of a reconstruction: coloured points plus one wire frustum per camera; not in the paper.

Written with trimesh. glTF is y-up with the camera looking down -z (OpenGL), so the OpenCV world is turned by
diag(1, -1, -1) (a 180 degree rotation about x) before export: the scene opens upright in glTF viewers when the
world is the first camera's frame. Frustums are line segments (glTF LINES), coloured from blue (first frame) to
red (last), with a depth of `frustum_scale` times the median camera-to-camera step (or 0.1 when the camera stays put).
"""

from __future__ import annotations

import os

import numpy as np

from vidllm_core.io import atomic_path

OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0, 1.0])


def frustum_segments(camera_to_world: np.ndarray, intrinsics: np.ndarray, width: int, height: int,
                     depth: float) -> np.ndarray:
    """Line segments [S, 8, 2, 3] of each camera's frustum (4 edges from the centre + the image rectangle)."""
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    K = np.asarray(intrinsics, dtype=np.float64)
    corners_px = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    segs = []
    for pose, k in zip(c2w, K):
        rays = np.column_stack([(corners_px[:, 0] - k[0, 2]) / k[0, 0], (corners_px[:, 1] - k[1, 2]) / k[1, 1],
                                np.ones(4)]) * depth
        world = rays @ pose[:3, :3].T + pose[:3, 3]
        centre = pose[:3, 3]
        segs.append([[centre, c] for c in world] + [[world[i], world[(i + 1) % 4]] for i in range(4)])
    return np.asarray(segs)


def frustum_depth(camera_to_world: np.ndarray, frustum_scale: float = 0.5) -> float:
    """A frustum size that suits the trajectory: `frustum_scale` x the median step between consecutive cameras."""
    centres = np.asarray(camera_to_world)[:, :3, 3]
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    step = float(np.median(steps)) if len(steps) else 0.0
    return frustum_scale * step if step > 1e-9 else 0.1


def write_glb(path: str | os.PathLike, *, points: np.ndarray, colors: np.ndarray, camera_to_world: np.ndarray,
              intrinsics: np.ndarray, width: int, height: int, frustum_scale: float = 0.5) -> None:
    """Write `path` (.glb): points [N,3] with colours uint8 [N,3] and the S camera frustums (OpenCV inputs)."""
    import trimesh

    scene = trimesh.Scene()
    if len(points):
        scene.add_geometry(trimesh.PointCloud(np.asarray(points, np.float64), colors=np.asarray(colors, np.uint8)),
                           geom_name="points")
    segs = frustum_segments(camera_to_world, intrinsics, width, height, frustum_depth(camera_to_world, frustum_scale))
    n = len(segs)
    for i, cam in enumerate(segs):
        t = i / max(n - 1, 1)
        colour = np.array([255 * t, 64, 255 * (1 - t), 255], dtype=np.uint8)
        path3d = trimesh.load_path(cam)
        path3d.colors = np.tile(colour, (len(path3d.entities), 1))
        scene.add_geometry(path3d, geom_name=f"camera_{i:04d}")
    scene.apply_transform(OPENCV_TO_GLTF)
    with atomic_path(path) as tmp:
        tmp.write_bytes(scene.export(file_type="glb"))
