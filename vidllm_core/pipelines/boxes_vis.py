"""Show grounded 3D boxes so a person can check them (issue 5 `vidllm ground --ply / --png`): boxes as coloured
wireframes together with the reconstructed point cloud (PLY or GLB), and projected onto the frame where the object
is best seen (PNG). Boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in metres.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from vidllm_core.pipelines.gravity import box_corners

__all__ = ["BOX_COLOURS", "EDGES", "wireframe_mesh", "write_boxes_with_points", "best_view", "project",
           "draw_overlay"]

BOX_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))
EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7))


def wireframe_mesh(boxes: np.ndarray, colours: Sequence[tuple[int, int, int]] = BOX_COLOURS,
                   radius: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 12 edges of each box as thin square prisms: (vertices [V, 3], faces [F, 3], vertex colours [V, 3] uint8)."""
    import trimesh

    verts, faces, cols = [], [], []
    offset = 0
    for k, corners in enumerate(box_corners(boxes)):
        size = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)[k, 3:]
        r = radius if radius is not None else max(0.005, 0.01 * float(size.max()))
        for a, b in EDGES:
            lo, hi = np.minimum(corners[a], corners[b]), np.maximum(corners[a], corners[b])
            ext = np.maximum(hi - lo, 0) + 2 * r
            mesh = trimesh.creation.box(extents=ext)
            v = np.asarray(mesh.vertices) + (lo + hi) / 2
            verts.append(v)
            faces.append(np.asarray(mesh.faces) + offset)
            cols.append(np.tile(np.asarray(colours[k % len(colours)], dtype=np.uint8), (len(v), 1)))
            offset += len(v)
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3), dtype=np.uint8)
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(cols)


def _ply_bytes(points: np.ndarray, colours: np.ndarray, faces: np.ndarray) -> bytes:
    n, f = len(points), len(faces)
    header = ("ply\nformat binary_little_endian 1.0\ncomment vidllm ground: point cloud + box wireframes\n"
              f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              f"element face {f}\nproperty list uchar int vertex_indices\nend_header\n").encode("ascii")
    vtype = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    v = np.empty(n, dtype=vtype)
    v["xyz"], v["rgb"] = points, colours
    ftype = np.dtype([("n", "u1"), ("idx", "<i4", 3)])
    fa = np.empty(f, dtype=ftype)
    fa["n"], fa["idx"] = 3, faces
    return header + v.tobytes() + fa.tobytes()


def write_boxes_with_points(path: str | os.PathLike, points: np.ndarray, colours: np.ndarray, boxes: np.ndarray,
                            box_colours: Sequence[tuple[int, int, int]] = BOX_COLOURS) -> None:
    """Write the point cloud and the box wireframes into one file: `.ply` (one mesh: the points are vertices that
    no face uses, the wireframes are faces; PLY cannot hold a trimesh Scene's separate point cloud) or `.glb` (a
    scene with a point cloud and a mesh). `path` must already be the final or a temporary file of that suffix."""
    path = os.fspath(path)
    bv, bf, bc = wireframe_mesh(boxes, box_colours)
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if path.lower().endswith(".glb"):
        import trimesh

        scene = trimesh.Scene()
        if len(points):
            scene.add_geometry(trimesh.PointCloud(points, colors=colours), node_name="points")
        if len(bv):
            mesh = trimesh.Trimesh(bv, bf, vertex_colors=bc, process=False)
            scene.add_geometry(mesh, node_name="boxes")
        with open(path, "wb") as fh:
            fh.write(scene.export(file_type="glb"))
        return
    all_v = np.concatenate([points, bv.astype(np.float32)]) if len(bv) else points
    all_c = np.concatenate([colours, bc]) if len(bv) else colours
    faces = bf + len(points) if len(bf) else np.zeros((0, 3), dtype=np.int64)
    with open(path, "wb") as fh:
        fh.write(_ply_bytes(all_v, all_c, faces))


def project(points: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [..., 2] and camera depth [...] of world points [..., 3] (extrinsic [3, 4] camera-from-world)."""
    cam = points @ extrinsic[:, :3].T + extrinsic[:, 3]
    z = cam[..., 2]
    uv = cam @ intrinsic.T
    return uv[..., :2] / np.where(np.abs(uv[..., 2:]) < 1e-9, 1e-9, uv[..., 2:]), z


def best_view(box: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray, height: int, width: int) -> int:
    """The frame where the box is best seen: most corners in front of the camera and inside the image, then the
    largest projected area (clipped to the image)."""
    corners = box_corners(box)[0]
    best, best_key = 0, (-1, -1.0)
    for s in range(len(extrinsic)):
        uv, z = project(corners, extrinsic[s], intrinsic[s])
        front = z > 1e-3
        inside = front & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
        area = 0.0
        if front.any():
            lo = np.clip(uv[front].min(0), 0, [width, height])
            hi = np.clip(uv[front].max(0), 0, [width, height])
            area = float(np.prod(hi - lo))
        key = (int(inside.sum()), area)
        if key > best_key:
            best, best_key = s, key
    return best


def draw_overlay(image: np.ndarray, boxes: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray,
                 labels: Sequence[str] = (), min_width: int = 640,
                 colours: Sequence[tuple[int, int, int]] = BOX_COLOURS) -> "object":
    """The frame (uint8 [H, W, 3]) upscaled to >= `min_width` px with each box's visible edges drawn; a PIL image."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    scale = max(1.0, min_width / w)
    img = Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    draw = ImageDraw.Draw(img)
    for k, corners in enumerate(box_corners(boxes)):
        uv, z = project(corners, extrinsic, intrinsic)
        colour = tuple(colours[k % len(colours)])
        for a, b in EDGES:
            if z[a] > 1e-3 and z[b] > 1e-3:
                draw.line([tuple(uv[a] * scale), tuple(uv[b] * scale)], fill=colour, width=max(2, round(scale)))
        if k < len(labels) and (z > 1e-3).any():
            top = uv[z > 1e-3].min(0) * scale
            draw.text((float(top[0]), max(0.0, float(top[1]) - 12)), labels[k], fill=colour)
    return img
