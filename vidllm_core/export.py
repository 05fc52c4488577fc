"""Writers for reconstruction outputs (issue 2 item 5): coloured PLY with confidence, cameras JSON, depth PNGs.

Every writer is atomic: it writes to a temporary path beside the target and renames it into place, so a failure
never leaves a partial file (or folder) behind. Point gathering follows VGGT's demo: drop the lowest-confidence
points by percentile (VGGT `demo_gradio.py` default 50%), then optionally voxel down-sample and cap the count.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError
from vidllm_core.io import atomic_path, replace_dir, write_json_atomic

CAMERAS_FORMAT = "vidllm-cameras"
CAMERAS_VERSION = 1
DEPTH_FILE_PATTERN = re.compile(r"^depth_\d{4,}\.png$")
DEFAULT_CONF_PERCENTILE = 50.0


@dataclass(frozen=True)
class PointCloud:
    """points float32 [N,3] (world, metres when the model is metric), colors uint8 [N,3], confidence float32 [N]."""

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray | None


# --------------------------------------------------------------------------------------------------- point cloud
def _ply_bytes_numpy(points: np.ndarray, colors: np.ndarray, confidence: np.ndarray | None) -> bytes:
    """Binary little-endian PLY: x,y,z float; red,green,blue uchar; confidence float (when given)."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if confidence is not None:
        fields.append(("confidence", "<f4"))
    data = np.empty(len(points), dtype=fields)
    data["x"], data["y"], data["z"] = points[:, 0], points[:, 1], points[:, 2]
    data["red"], data["green"], data["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    if confidence is not None:
        data["confidence"] = confidence
    props = "".join(f"property {'float' if t.endswith('f4') else 'uchar'} {n}\n" for n, t in fields)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n{props}end_header\n"
    return header.encode("ascii") + data.tobytes()


def _ply_bytes_trimesh(points: np.ndarray, colors: np.ndarray, confidence: np.ndarray | None) -> bytes | None:
    """trimesh's PLY exporter; returns None if this trimesh version drops the confidence property."""
    import trimesh
    from trimesh.exchange.ply import export_ply

    cloud = trimesh.PointCloud(points, colors=colors)
    if confidence is not None:
        # export_ply writes any `vertex_attributes` dict it finds; PointCloud has none by default.
        cloud.vertex_attributes = {"confidence": confidence}
    blob = export_ply(cloud)
    if confidence is not None and b"property float confidence" not in blob.split(b"end_header")[0]:
        return None
    return blob


def write_point_cloud(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray,
                      confidence: np.ndarray | None = None) -> None:
    """Write a binary PLY (trimesh; numpy fallback) with per-vertex RGB and an optional float `confidence`.

    points float [N,3], colors uint8 [N,3] (or [N,4]; alpha is dropped), confidence float [N] or None.
    trimesh writes an extra `alpha` uchar property (255); readers that ignore unknown properties are unaffected.
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    colors = np.ascontiguousarray(np.asarray(colors)[:, :3], dtype=np.uint8)
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape[0] != points.shape[0]:
        raise ValueError(f"points must be [N,3] and colors [N,3]; got {points.shape} and {colors.shape}")
    if confidence is not None:
        confidence = np.ascontiguousarray(confidence, dtype=np.float32).reshape(-1)
        if confidence.shape[0] != points.shape[0]:
            raise ValueError(f"confidence must be [N]; got {confidence.shape} for {points.shape[0]} points")
    blob = _ply_bytes_trimesh(points, colors, confidence) if len(points) else None
    if blob is None:
        blob = _ply_bytes_numpy(points, colors, confidence)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)


def read_ply_vertices(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the vertex properties of a binary little-endian PLY written here (for tests and round trips)."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    lines = raw[:end].decode("ascii").splitlines()
    if lines[0] != "ply" or "format binary_little_endian 1.0" not in lines:
        raise DataError(f"'{path}' is not a binary little-endian PLY")
    count, fields, in_vertex = 0, [], False
    types = {"float": "<f4", "uchar": "u1", "double": "<f8", "int": "<i4", "uint8": "u1", "float32": "<f4"}
    for line in lines:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count, in_vertex = int(parts[2]), True
        elif parts[:1] == ["element"]:
            in_vertex = False
        elif parts[:1] == ["property"] and in_vertex:
            fields.append((parts[2], types[parts[1]]))
    data = np.frombuffer(raw, dtype=fields, count=count, offset=end)
    return {name: data[name].copy() for name, _ in fields}


# --------------------------------------------------------------------------------------------------- cameras
def camera_to_world(extrinsic: np.ndarray) -> np.ndarray:
    """Camera-from-world [S,3,4] (OpenCV) -> camera-to-world [S,4,4]: [R^T | -R^T t]."""
    extrinsic = np.asarray(extrinsic, dtype=np.float64)
    R, t = extrinsic[..., :3, :3], extrinsic[..., :3, 3:]
    out = np.zeros(extrinsic.shape[:-2] + (4, 4), dtype=np.float64)
    out[..., :3, :3] = np.swapaxes(R, -1, -2)
    out[..., :3, 3:] = -np.swapaxes(R, -1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


def _finite_list(a: np.ndarray) -> list:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise DataError("camera parameters contain NaN or infinite values")
    return a.tolist()


def write_cameras_json(path: str | os.PathLike, *, source_indices: Sequence[int], timestamps: Sequence[float] | None,
                       camera_to_world: np.ndarray, intrinsics: np.ndarray, width: int, height: int,
                       metric: bool, scale: float | None = None, source_intrinsics: np.ndarray | None = None,
                       extra: dict[str, Any] | None = None) -> None:
    """Write the cameras JSON (schema in docs/reconstruct.md): one entry per frame, OpenCV axes, metres if metric.

    camera_to_world [S,4,4] maps camera coordinates to world coordinates; intrinsics [S,3,3] in pixels at the
    output resolution (width x height), pixel centres at integer coordinates. `source_intrinsics` [S,3,3], when
    given, is the same camera at the source video resolution (per frame key `source_intrinsics`).
    """
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    K = np.asarray(intrinsics, dtype=np.float64)
    S = len(source_indices)
    if c2w.shape != (S, 4, 4) or K.shape != (S, 3, 3):
        raise ValueError(f"expected camera_to_world [{S},4,4] and intrinsics [{S},3,3]; got {c2w.shape}, {K.shape}")
    if source_intrinsics is not None:
        source_intrinsics = np.asarray(source_intrinsics, dtype=np.float64).reshape(S, 3, 3)
    if timestamps is not None and len(timestamps) != S:
        raise ValueError(f"expected {S} timestamps, got {len(timestamps)}")
    frames = [{
        "index": i,
        "source_frame": int(source_indices[i]),
        "timestamp": None if timestamps is None else round(float(timestamps[i]), 6),
        "camera_to_world": _finite_list(c2w[i]),
        "intrinsics": _finite_list(K[i]),
        "width": int(width),
        "height": int(height),
        **({} if source_intrinsics is None else {"source_intrinsics": _finite_list(source_intrinsics[i])}),
    } for i in range(S)]
    doc = {
        "format": CAMERAS_FORMAT,
        "version": CAMERAS_VERSION,
        "convention": "OpenCV camera axes (x right, y down, z forward); camera_to_world maps camera to world "
                      "coordinates; the world frame is the first camera; pixel centres at integer coordinates",
        "units": "metres" if metric else "relative (unknown scale)",
        "metric": bool(metric),
        "scale": None if scale is None else float(scale),
        "width": int(width),
        "height": int(height),
        **(extra or {}),
        "frames": frames,
    }
    write_json_atomic(path, doc)


# --------------------------------------------------------------------------------------------------- depth
def check_replaceable_dir(target: str | os.PathLike) -> None:
    """Raise DataError unless `target` is absent, empty, or holds only depth PNGs (`depth_NNNN.png`)."""
    target = Path(target)
    if target.exists():
        if not target.is_dir():
            raise DataError(f"depth output '{target}' exists and is not a folder")
        foreign = sorted(p.name for p in target.iterdir() if not DEPTH_FILE_PATTERN.match(p.name))
        if foreign:
            raise DataError(f"refusing to replace folder '{target}': it holds other files (e.g. {foreign[0]})")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it replaces `target`, on error it is removed.

    An existing `target` is replaced only if it is empty or holds nothing but depth PNGs (`depth_NNNN.png`) from
    an earlier run; anything else raises DataError before work starts.
    """
    target = Path(target)
    check_replaceable_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def depth_to_millimetres(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres, rounded; NaN, inf and values <= 0 become 0 (invalid), > 65.535 m saturates."""
    depth = np.asarray(depth, dtype=np.float64)
    mm = np.where(np.isfinite(depth) & (depth > 0), np.round(depth * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def write_depth_pngs(folder: str | os.PathLike, depth: np.ndarray) -> list[Path]:
    """Write depth [S,H,W] (metres) as `depth_0000.png`, ... 16-bit PNGs in millimetres (0 = invalid), atomically."""
    from PIL import Image

    depth = np.asarray(depth)
    if depth.ndim == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 3:
        raise ValueError(f"depth must be [S,H,W], got {depth.shape}")
    mm = depth_to_millimetres(depth)
    folder = Path(folder)
    names = [f"depth_{i:04d}.png" for i in range(len(mm))]
    with atomic_dir(folder) as tmp:
        for name, frame in zip(names, mm):
            image = Image.fromarray(np.ascontiguousarray(frame))  # uint16 -> PIL mode 'I;16'
            if image.mode != "I;16":
                raise RuntimeError(f"PIL made a {image.mode} image from uint16 depth; expected I;16")
            image.save(tmp / name)
    return [folder / n for n in names]


# --------------------------------------------------------------------------------------------------- gathering
def points_from_prediction(world_points: np.ndarray, colors: np.ndarray, confidence: np.ndarray | None = None, *,
                           conf_percentile: float | None = DEFAULT_CONF_PERCENTILE,
                           conf_threshold: float | None = None, voxel_size: float | None = None,
                           max_points: int | None = None, mask: np.ndarray | None = None,
                           seed: int = 0) -> PointCloud:
    """Flatten per-pixel predictions into a filtered point cloud.

    world_points float [S,H,W,3]; colors uint8 [S,H,W,3] or float [S,3,H,W] in [0,1]; confidence [S,H,W] or None;
    mask bool [S,H,W] of pixels to consider (e.g. not padding).
    Filters, in order: non-finite points; `conf_threshold` (keep conf >= t); `conf_percentile` P (drop the lowest
    P% of the remaining confidences, keep conf >= the P-th percentile; None or 0 keeps all); `voxel_size` (one point
    per voxel, the most confident); `max_points` (a seeded uniform random subset, in the original order).
    """
    pts = np.asarray(world_points, dtype=np.float32)
    if pts.ndim != 4 or pts.shape[-1] != 3:
        raise ValueError(f"world_points must be [S,H,W,3], got {pts.shape}")
    cols = np.asarray(colors)
    if cols.ndim == 4 and cols.shape[1] == 3 and cols.shape[-1] != 3:
        cols = np.moveaxis(cols, 1, -1)
    if cols.dtype != np.uint8:
        cols = np.clip(np.round(cols.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if cols.shape != pts.shape:
        raise ValueError(f"colors {cols.shape} do not match world_points {pts.shape}")
    pts, cols = pts.reshape(-1, 3), cols.reshape(-1, 3)
    conf = None if confidence is None else np.asarray(confidence, dtype=np.float32).reshape(-1)
    keep = np.all(np.isfinite(pts), axis=1)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).reshape(-1)
    if conf is not None:
        from vidllm_core.geometry.unproject import confidence_mask

        keep = confidence_mask(conf, conf_percentile or None, conf_threshold, valid=keep)
    idx = np.flatnonzero(keep)
    if voxel_size is not None and voxel_size > 0 and len(idx):
        order = idx[np.argsort(-conf[idx], kind="stable")] if conf is not None else idx
        keys = np.floor(pts[order] / voxel_size).astype(np.int64)
        _, first = np.unique(keys, axis=0, return_index=True)
        idx = np.sort(order[first])
    if max_points is not None and len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_points, replace=False))
    return PointCloud(points=pts[idx], colors=cols[idx], confidence=None if conf is None else conf[idx])
