"""Ground a description in a `Scene` and write what `vidllm ground` writes (paper Sec. 3.4 grounding head; the output
files are not in the paper): the boxes in the estimated box frame or, gravity-aligned, with the floor at z = 0, a
JSON record that names its frame, the confident points with the box wireframes (PLY / GLB) and an overlay on the
frame where the first box is best seen (PNG). A library user gets the same files as the command.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vidllm_core.geometry.box_frame import BoxFrame
    from vidllm_core.pipelines.language import Grounding
    from vidllm_core.pipelines.vision_pass import Scene

__all__ = ["GroundedScene", "ground_scene", "write_ground_outputs"]


@dataclass
class GroundedScene:
    """result: the `Grounding` (boxes in the box frame). frame: that box frame. boxes: [K, 6] in the output frame
    (the box frame, or gravity-aligned). out_from_world: 4x4 reconstruction world -> output frame. record: the JSON
    document `vidllm ground` prints / writes."""

    result: "Grounding"
    frame: "BoxFrame"
    boxes: np.ndarray
    out_from_world: np.ndarray
    record: dict[str, Any]


def ground_scene(model: Any, scene: "Scene", description: str, *, multiple: bool = False,
                 proposals: np.ndarray | None = None, threshold: float | None = None,
                 gravity_align: bool = False) -> GroundedScene:
    """Ground `description` in `scene` (made with tokens). `proposals` [P, 6] are in the output frame (the box frame,
    or the gravity-aligned frame with `gravity_align`)."""
    from vidllm_core.geometry.box_frame import estimate_box_frame
    from vidllm_core.pipelines.gt_report import ground_truth_report
    from vidllm_core.pipelines.language import ground

    geometry = scene.encoding.geometry
    frame = estimate_box_frame(geometry)
    if proposals is not None and gravity_align:
        proposals = frame.boxes_from_scene(proposals)
    result = ground(model, scene.encoding, description, multiple=multiple, proposals=proposals, threshold=threshold,
                    frame=frame)
    boxes = result.boxes.astype(np.float64)
    out_from_world, frame_doc = frame.box_from_world, frame.describe()
    if gravity_align:
        out_from_world, boxes = frame.scene_from_world, frame.boxes_to_scene(boxes)
        frame_doc = {"name": "gravity_aligned: z up, floor at z = 0, x/y along the room's walls",
                     "source": frame.source, "from_reconstruction": np.round(out_from_world, 9).tolist()}
    record = {
        "video": str(scene.source.path), "description": result.description, "units": "metres", "frame": frame_doc,
        "metric": bool(geometry.metric), "scale": float(geometry.scale), "cached": scene.cached,
        "boxes": [{"box": [round(float(v), 4) for v in b], "score": round(float(s), 4)}
                  for b, s in zip(boxes, result.scores)],
        "ground_truth": ground_truth_report(scene),   # posed sources (ScanNet layout): placement, depth/pose error
    }
    return GroundedScene(result, frame, boxes, np.asarray(out_from_world, dtype=np.float64), record)


def write_ground_outputs(grounded: GroundedScene, scene: "Scene", *, output: Path | None = None,
                         ply: Path | None = None, png: Path | None = None) -> None:
    """Write the requested files, all or none (each is renamed into place only when every one succeeded). With
    `png`, `grounded.record["png_frame"]` becomes the source index of the frame drawn on."""
    from vidllm_core.io import atomic_path

    with contextlib.ExitStack() as stage:
        if png is not None:
            img, view = _overlay(grounded, scene)
            grounded.record["png_frame"] = scene.source_frames[view]
            img.save(stage.enter_context(atomic_path(png)), format="PNG")
        if output is not None:
            tmp = stage.enter_context(atomic_path(output))
            tmp.write_text(json.dumps(grounded.record, indent=2) + "\n", encoding="utf-8")
        if ply is not None:
            from vidllm_core.pipelines.boxes_vis import write_boxes_with_points
            from vidllm_core.pipelines.gravity import transform_points

            cloud = scene.reconstruction.point_cloud(conf_percentile=50.0)   # the confident half
            points = transform_points(cloud.points.astype(np.float64), grounded.out_from_world)
            write_boxes_with_points(stage.enter_context(atomic_path(ply)), points, cloud.colors, grounded.boxes)


def _overlay(grounded: GroundedScene, scene: "Scene") -> tuple[Any, int]:
    """The boxes drawn on the frame where the first one is best seen, and that frame's index."""
    from vidllm_core.pipelines.boxes_vis import best_view, draw_overlay

    rec = scene.reconstruction
    boxes = grounded.result.boxes.astype(np.float64)   # box frame
    ext = rec.extrinsic.astype(np.float64) @ np.linalg.inv(grounded.frame.box_from_world)   # camera <- box frame
    intr = rec.intrinsic.astype(np.float64)
    view = best_view(boxes[:1], ext, intr, rec.height, rec.width) if len(boxes) else 0
    labels = [f"{s:.2f}" for s in grounded.result.scores]
    return draw_overlay(scene.images[view], boxes, ext[view], intr[view], labels), view
