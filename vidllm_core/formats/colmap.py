"""COLMAP sparse model writer (text and binary `cameras / images / points3D`); not in the paper (issue 13).

Format: https://colmap.github.io/format.html. One PINHOLE camera per image (the predicted intrinsics differ per
frame), `images` hold world-to-camera poses (quaternion w, x, y, z + translation, OpenCV axes, as COLMAP), points
carry colour and an empty track (the points come from depth maps, not from matched keypoints). COLMAP puts the
origin at the corner of the top-left pixel, vidllm at its centre, so the principal point is written as `c + 0.5`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

PINHOLE_MODEL_ID = 1  # COLMAP's CameraModelId for PINHOLE (params fx, fy, cx, cy)


def _world_to_camera(camera_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[S,4,4] camera-to-world -> (quaternions w,x,y,z [S,4], translations [S,3]) of world-to-camera."""
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    rot = np.swapaxes(c2w[:, :3, :3], 1, 2)
    trans = -np.einsum("sij,sj->si", rot, c2w[:, :3, 3])
    xyzw = Rotation.from_matrix(rot).as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    wxyz *= np.where(wxyz[:, :1] < 0, -1.0, 1.0)  # one sign per rotation (w >= 0)
    return wxyz, trans


def pinhole_params(intrinsics: np.ndarray) -> np.ndarray:
    """[S,3,3] intrinsics (pixel centres at integers) -> [S,4] COLMAP PINHOLE fx, fy, cx, cy (corner origin)."""
    K = np.asarray(intrinsics, dtype=np.float64)
    return np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2] + 0.5, K[:, 1, 2] + 0.5], axis=1)


def _write_text(folder: Path, params: np.ndarray, width: int, height: int, quats: np.ndarray, trans: np.ndarray,
                names: Sequence[str], points: np.ndarray, colors: np.ndarray) -> None:
    cams = [f"{i + 1} PINHOLE {width} {height} " + " ".join(f"{v:.17g}" for v in p) for i, p in enumerate(params)]
    (folder / "cameras.txt").write_text("# Camera list: CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
                                        f"# Number of cameras: {len(params)}\n" + "\n".join(cams) + "\n")
    images = [f"{i + 1} " + " ".join(f"{v:.17g}" for v in (*q, *t)) + f" {i + 1} {name}\n"
              for i, (q, t, name) in enumerate(zip(quats, trans, names))]
    (folder / "images.txt").write_text("# Image list: IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                                       "# then one line of POINTS2D[] as (X, Y, POINT3D_ID) (empty here)\n"
                                       f"# Number of images: {len(names)}\n" + "".join(line + "\n" for line in images))
    rows = np.column_stack([np.arange(1, len(points) + 1), points.astype(np.float64), colors.astype(np.int64),
                            np.zeros(len(points))])
    with open(folder / "points3D.txt", "w") as f:
        f.write("# 3D point list: POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] (empty here)\n"
                f"# Number of points: {len(points)}\n")
        np.savetxt(f, rows, fmt=["%d", "%.9g", "%.9g", "%.9g", "%d", "%d", "%d", "%.1f"])


def _write_binary(folder: Path, params: np.ndarray, width: int, height: int, quats: np.ndarray, trans: np.ndarray,
                  names: Sequence[str], points: np.ndarray, colors: np.ndarray) -> None:
    cam = np.empty(len(params), dtype=[("id", "<i4"), ("model", "<i4"), ("w", "<u8"), ("h", "<u8"),
                                       ("params", "<f8", (4,))])
    cam["id"], cam["model"], cam["w"], cam["h"], cam["params"] = np.arange(1, len(params) + 1), PINHOLE_MODEL_ID, \
        width, height, params
    (folder / "cameras.bin").write_bytes(np.uint64(len(params)).tobytes() + cam.tobytes())
    head = np.dtype([("id", "<i4"), ("q", "<f8", (4,)), ("t", "<f8", (3,)), ("camera", "<i4")])
    blob = [np.uint64(len(names)).tobytes()]
    for i, (q, t, name) in enumerate(zip(quats, trans, names)):
        rec = np.array([(i + 1, q, t, i + 1)], dtype=head)
        blob += [rec.tobytes(), name.encode("utf-8") + b"\0", np.uint64(0).tobytes()]  # no 2D points
    (folder / "images.bin").write_bytes(b"".join(blob))
    pts = np.empty(len(points), dtype=[("id", "<u8"), ("xyz", "<f8", (3,)), ("rgb", "u1", (3,)), ("error", "<f8"),
                                       ("track", "<u8")])
    pts["id"], pts["xyz"], pts["rgb"], pts["error"], pts["track"] = np.arange(1, len(points) + 1), points, colors, \
        0.0, 0
    (folder / "points3D.bin").write_bytes(np.uint64(len(points)).tobytes() + pts.tobytes())


def write_colmap(folder: str | os.PathLike, *, camera_to_world: np.ndarray, intrinsics: np.ndarray, width: int,
                 height: int, image_names: Sequence[str], points: np.ndarray, colors: np.ndarray,
                 text: bool = True, binary: bool = True) -> None:
    """Write a COLMAP sparse model into an existing `folder` (text and/or binary files).

    camera_to_world [S,4,4] (OpenCV axes), intrinsics [S,3,3] at `width` x `height`, image_names [S] (paths
    relative to the images folder), points float [N,3], colors uint8 [N,3].
    """
    folder = Path(folder)
    quats, trans = _world_to_camera(camera_to_world)
    params = pinhole_params(intrinsics)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    args = (params, int(width), int(height), quats, trans, list(image_names), points, colors)
    if text:
        _write_text(folder, *args)
    if binary:
        _write_binary(folder, *args)
