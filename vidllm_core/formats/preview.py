"""Preview PNG of a reconstruction (top view + one perspective view), numpy + PIL only; not in the paper.

Points are splatted as 2x2-pixel squares, nearest on top: the top view looks down the up axis (the gravity-aligned
+z when known, else the cameras' mean "up", -y of OpenCV) at the points below the highest camera (no ceiling), the
perspective view looks from behind and above the first camera towards the centre of the points. Cameras are drawn as
small red dots with the trajectory as a line in the top view.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND = (255, 255, 255)


def _splat(uv: np.ndarray, depth: np.ndarray, colors: np.ndarray, size: int, dot: int = 2) -> np.ndarray:
    """Rasterise pixel coordinates uv [N,2] with depth [N] (smaller = nearer) into an RGB image [size,size,3] as
    `dot` x `dot` squares, nearest on top."""
    canvas = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
    keep = np.isfinite(depth) & np.isfinite(uv).all(1)
    order = np.argsort(-depth[keep], kind="stable")  # far first, near overwrites
    px, cols = np.floor(uv[keep][order]).astype(np.int64), colors[keep][order]
    for dy in range(dot):
        for dx in range(dot):
            x, y = px[:, 0] + dx, px[:, 1] + dy
            ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            canvas[y[ok], x[ok]] = cols[ok]
    return canvas


def _fit(xy: np.ndarray, ref: np.ndarray, size: int, margin: float = 0.06) -> np.ndarray:
    """Scale/shift 2D coordinates so the 1st-99th percentile box of `ref` fills the image (y down)."""
    lo, hi = np.percentile(ref, 1, axis=0), np.percentile(ref, 99, axis=0)
    span = float(max(np.max(hi - lo), 1e-9))
    scale = size * (1 - 2 * margin) / span
    centre = (lo + hi) / 2
    out = (xy - centre) * scale + size / 2
    out[:, 1] = size - out[:, 1]
    return out


def _basis(up: np.ndarray) -> np.ndarray:
    """Rows: right, forward, up (orthonormal) for a given up vector."""
    up = up / np.linalg.norm(up)
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    right = np.cross(helper, up)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(up, right), up])


def top_view(points: np.ndarray, colors: np.ndarray, centres: np.ndarray, up: np.ndarray, size: int) -> Image.Image:
    """Orthographic view down `up`, cut at the highest camera (a floor plan: no ceiling); cameras and trajectory
    in red."""
    basis = _basis(up)
    p, c = points @ basis.T, centres @ basis.T
    below = p[:, 2] <= c[:, 2].max() if len(c) else np.ones(len(p), dtype=bool)
    p, colors = p[below], colors[below]
    uv = _fit(p[:, :2], np.concatenate([p[:, :2], c[:, :2]]), size)
    cam_uv = _fit(c[:, :2], np.concatenate([p[:, :2], c[:, :2]]), size)
    image = Image.fromarray(_splat(uv, -p[:, 2], colors, size))
    draw = ImageDraw.Draw(image)
    if len(cam_uv) > 1:
        draw.line([tuple(q) for q in cam_uv], fill=(220, 0, 0), width=1)
    for u, v in cam_uv:
        draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=(220, 0, 0))
    return image


def perspective_view(points: np.ndarray, colors: np.ndarray, centres: np.ndarray, up: np.ndarray,
                     size: int, fov_deg: float = 60.0) -> Image.Image:
    """Pinhole view from behind/above the trajectory start, looking at the median point."""
    target = np.median(points, axis=0) if len(points) else np.zeros(3)
    extent = float(np.linalg.norm(np.percentile(points, 95, axis=0) - np.percentile(points, 5, axis=0))) \
        if len(points) else 1.0
    up = up / np.linalg.norm(up)
    start = centres[0] if len(centres) else target - np.array([0.0, 0.0, 1.0])
    back = start - target
    back -= (back @ up) * up
    back = back / np.linalg.norm(back) if np.linalg.norm(back) > 1e-9 else _basis(up)[1]
    eye = target + back * extent * 0.9 + up * extent * 0.6
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rel = points - eye
    cam = np.stack([rel @ right, rel @ down, rel @ fwd], axis=1)
    front = cam[:, 2] > 1e-6
    f = size / 2 / np.tan(np.radians(fov_deg) / 2)
    uv = cam[front, :2] / cam[front, 2:3] * f + size / 2
    image = Image.fromarray(_splat(uv, cam[front, 2], colors[front], size))
    rel_c = centres - eye
    cc = np.stack([rel_c @ right, rel_c @ down, rel_c @ fwd], axis=1)
    draw = ImageDraw.Draw(image)
    for x, y, z in cc[cc[:, 2] > 1e-6]:
        u, v = x / z * f + size / 2, y / z * f + size / 2
        draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=(220, 0, 0))
    return image


def write_preview(path: str | os.PathLike, *, points: np.ndarray, colors: np.ndarray, camera_to_world: np.ndarray,
                  up: np.ndarray | None = None, size: int = 256, max_points: int = 300000) -> None:
    """Write a PNG with the top view (left) and the perspective view (right), each `size` x `size` pixels, from at
    most `max_points` points (an even stride through the cloud).

    up: the world's up direction; default the cameras' mean up (-y of the OpenCV camera) in world coordinates."""
    from vidllm_core.io import atomic_path

    step = max(1, len(points) // max_points)  # a 2 x size^2 image shows no more; bounds time and memory
    points = np.asarray(points[::step], dtype=np.float64).reshape(-1, 3)
    colors = np.asarray(colors[::step], dtype=np.uint8).reshape(-1, 3)
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    if up is None:
        up = -c2w[:, :3, 1].mean(0)
    up = np.asarray(up, dtype=np.float64)
    centres = c2w[:, :3, 3]
    sheet = Image.new("RGB", (2 * size, size), BACKGROUND)
    sheet.paste(top_view(points, colors, centres, up, size), (0, 0))
    sheet.paste(perspective_view(points, colors, centres, up, size), (size, 0))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
