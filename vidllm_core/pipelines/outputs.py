"""Writing the outputs of a reconstruction (issue 2 item 5, issue 13): PLY, cameras JSON, depth PNGs, an export
folder (COLMAP, GLB, nerfstudio, preview) and a preview PNG. Not in the paper.

`check_outputs` runs before any work (one-line errors); `write_outputs` stages every file and renames them into
place only after all writes succeeded, so a failure leaves no partial output.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError
from vidllm_core.export import (
    DEFAULT_CONF_PERCENTILE, PointCloud, atomic_dir, check_replaceable_dir, write_cameras_json, write_depth_pngs,
    write_point_cloud,
)
from vidllm_core.io import atomic_path, check_output, replace_dir, write_json_atomic
from vidllm_core.pipelines.reconstruct import Reconstruction

EXPORT_FORMAT = "vidllm-export"
EXPORT_MARKER = "export.json"


@dataclass(frozen=True)
class OutputRequest:
    """Which outputs to write: `ply` (required), `cameras` JSON, `depth_dir` (uint16 mm PNGs), `export_dir` (every
    format, see `write_export_folder`), `preview` PNG; points keep conf >= the `conf_percentile`-th percentile and
    at most `max_points` (seeded subset)."""

    ply: Path
    cameras: Path | None = None
    depth_dir: Path | None = None
    export_dir: Path | None = None
    preview: Path | None = None
    conf_percentile: float = DEFAULT_CONF_PERCENTILE
    max_points: int | None = None


def check_export_dir(folder: Path) -> None:
    """DataError unless `folder` is absent, empty, or an earlier export (it holds `export.json`)."""
    if folder.exists() and folder.is_dir() and any(folder.iterdir()) and not (folder / EXPORT_MARKER).is_file():
        raise DataError(f"refusing to replace folder '{folder}': it is not an earlier vidllm export (no "
                        f"{EXPORT_MARKER}); pick a new or empty folder")


def check_outputs(request: OutputRequest) -> None:
    """Before any work: every output path can be written (ConfigError / DataError, one line)."""
    if request.ply.suffix.lower() != ".ply":
        raise DataError(f"output must end in .ply, got '{request.ply}'")
    if request.preview is not None and request.preview.suffix.lower() != ".png":
        raise DataError(f"--preview must end in .png, got '{request.preview}'")
    for path, what, kind in ((request.ply, "point cloud", "file"), (request.cameras, "cameras file", "file"),
                             (request.preview, "preview", "file"), (request.depth_dir, "depth folder", "dir"),
                             (request.export_dir, "export folder", "dir")):
        if path is not None:
            check_output(path, what, kind)
    if request.depth_dir is not None:
        check_replaceable_dir(request.depth_dir)
    if request.export_dir is not None:
        check_export_dir(request.export_dir)


def up_vector(rec: Reconstruction, gravity_aligned: bool) -> np.ndarray:
    """The world's up direction: +z after gravity alignment, else the cameras' mean up (-y of OpenCV)."""
    return np.array([0.0, 0.0, 1.0]) if gravity_aligned else -rec.camera_to_world()[:, :3, 1].mean(0)


def write_export_folder(folder: Path, rec: Reconstruction, cloud: PointCloud, cameras_doc: dict[str, Any],
                        up: np.ndarray) -> None:
    """Fill the empty `folder`: images/frame_NNNN.png (the frames the network saw), sparse/0/ COLMAP text + binary,
    transforms.json (nerfstudio, with ply_file_path points.ply), points.ply, scene.glb, preview.png, cameras.json
    and export.json (what is where)."""
    from PIL import Image

    from vidllm_core.formats.colmap import write_colmap
    from vidllm_core.formats.glb import write_glb
    from vidllm_core.formats.nerfstudio import write_transforms_json
    from vidllm_core.formats.preview import write_preview

    c2w, K, W, H = rec.camera_to_world(), rec.intrinsic, rec.width, rec.height
    names = [f"frame_{i:04d}.png" for i in range(rec.num_frames)]
    (folder / "images").mkdir()
    for name, image in zip(names, rec.colors):
        Image.fromarray(image).save(folder / "images" / name)
    sparse = folder / "sparse" / "0"
    sparse.mkdir(parents=True)
    write_colmap(sparse, camera_to_world=c2w, intrinsics=K, width=W, height=H, image_names=names,
                 points=cloud.points, colors=cloud.colors)
    write_point_cloud(folder / "points.ply", cloud.points, cloud.colors, cloud.confidence)
    write_transforms_json(folder / "transforms.json", camera_to_world=c2w, intrinsics=K, width=W, height=H,
                          file_paths=[f"images/{n}" for n in names], ply_file_path="points.ply")
    write_glb(folder / "scene.glb", points=cloud.points, colors=cloud.colors, camera_to_world=c2w, intrinsics=K,
              width=W, height=H)
    write_preview(folder / "preview.png", points=cloud.points, colors=cloud.colors, camera_to_world=c2w, up=up)
    write_cameras_json(folder / "cameras.json", **cameras_doc)
    write_json_atomic(folder / EXPORT_MARKER, {
        "format": EXPORT_FORMAT, "version": 1, "images": "images/", "colmap": "sparse/0/ (text and binary)",
        "nerfstudio": "transforms.json", "points": "points.ply", "glb": "scene.glb", "preview": "preview.png",
        "cameras": "cameras.json", "scale": cameras_doc.get("extra", {}).get("scale_source")})


def write_outputs(rec: Reconstruction, request: OutputRequest, *, source_indices: list[int],
                  timestamps: list[float] | None, extra: dict[str, Any], gravity_aligned: bool = False) -> PointCloud:
    """Write every requested output of `rec` atomically (all renamed into place together); returns the point cloud.

    extra: fields added to the cameras JSON (source, scale_source, gravity, chunks, ...)."""
    cloud = rec.point_cloud(conf_percentile=request.conf_percentile, max_points=request.max_points)
    cameras_doc = dict(source_indices=source_indices, timestamps=timestamps, camera_to_world=rec.camera_to_world(),
                       intrinsics=rec.intrinsic, width=rec.width, height=rec.height, metric=rec.metric,
                       scale=rec.scale, source_intrinsics=rec.source_intrinsics(), extra=extra)
    up = up_vector(rec, gravity_aligned)
    with contextlib.ExitStack() as stage:
        write_point_cloud(stage.enter_context(atomic_path(request.ply)), cloud.points, cloud.colors, cloud.confidence)
        if request.cameras is not None:
            write_cameras_json(stage.enter_context(atomic_path(request.cameras)), **cameras_doc)
        if request.preview is not None:
            from vidllm_core.formats.preview import write_preview

            write_preview(stage.enter_context(atomic_path(request.preview)), points=cloud.points,
                          colors=cloud.colors, camera_to_world=rec.camera_to_world(), up=up)
        if request.depth_dir is not None:
            write_depth_pngs(stage.enter_context(atomic_dir(request.depth_dir)), rec.depth)
        if request.export_dir is not None:
            stage.enter_context(_staged_export(request.export_dir, rec, cloud, cameras_doc, up))
    return cloud


@contextlib.contextmanager
def _staged_export(target: Path, rec: Reconstruction, cloud: PointCloud, cameras_doc: dict[str, Any],
                   up: np.ndarray):
    """Write the export folder beside `target` now; swap it in when the surrounding stage succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_export_folder(tmp, rec, cloud, cameras_doc, up)
        yield tmp
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
