"""How the reconstruction of a posed source (a ScanNet-layout scene) compares with the source's own ground truth (not
in the paper; the depth metrics are those of its App. A.2 evaluation): where it was placed, the depth error of the
sampled frames with GT depth (no alignment: the model's own metric scale) and the camera-centre error once placed
through the anchor frame. Commands print it for such sources, so a user sees at once whether the scale is right."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vidllm_core.errors import DataError

if TYPE_CHECKING:
    from vidllm_core.pipelines.vision_pass import Scene

__all__ = ["ground_truth_report"]


def ground_truth_report(scene: "Scene") -> dict[str, Any] | None:
    """None for sources without GT; else {"anchor_frame", "to_ground_truth" (4x4, reconstruction -> GT world),
    "depth" (AbsRel, delta1, RMSE, ... over the sampled frames with a GT depth image; None without any; {"error"}
    when one cannot be read), "camera_centre_error_m"
    ({"mean", "max", "frames"} over the sampled frames with a GT pose, or None)}."""
    gt = scene.ground_truth
    if gt is None:
        return None
    rec = scene.reconstruction
    try:
        depth_doc = _depth_report(scene)
    except DataError as exc:   # an unreadable GT depth image: said in the report, the reconstruction stands
        depth_doc = {"error": str(exc)}
    place = scene.placement
    centres = None
    if place is not None:
        placed = place.to_gt @ rec.camera_to_world()
        posed = [i for i in range(rec.num_frames) if gt.has_pose(i)]
        err = np.linalg.norm(placed[posed, :3, 3] - gt.poses[posed, :3, 3], axis=1)
        centres = {"mean": round(float(err.mean()), 4), "max": round(float(err.max()), 4), "frames": len(posed)}
    return {"anchor_frame": None if place is None else place.anchor_id,
            "to_ground_truth": None if place is None else np.round(place.to_gt, 6).tolist(),
            "depth": depth_doc, "camera_centre_error_m": centres}


def _depth_report(scene: "Scene") -> dict[str, Any] | None:
    """Depth metrics (no alignment) of the sampled frames with a GT depth image, resampled to it; None without any."""
    from vidllm_core.metrics.depth import depth_metrics

    gt, rec = scene.ground_truth, scene.reconstruction
    preds, gts = [], []
    for i in range(rec.num_frames):
        depth = gt.depth(i)
        if depth is not None:
            gts.append(depth)
            preds.append(rec.depth_at(i, depth.shape[0], depth.shape[1], gt.intrinsic_depth, gt.intrinsic_color))
    if not gts or len({g.shape for g in gts}) != 1 or not any((g > 0).any() for g in gts):
        return None
    metrics = depth_metrics(np.stack(preds), np.stack(gts))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
