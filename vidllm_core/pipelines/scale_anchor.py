"""User-given metric scale and gravity alignment of a reconstruction (issue 13; not in the paper, which trusts the
real-scale alignment of Sec. 3.2).

Two anchors a user can actually provide without calibration tools: a known distance between two cameras (a
tape-measured walk between two marked frames; frames are the sampled-frame indices of `cameras.json`) or the camera
height above the floor (a phone held at chest height, a tripod). Either gives one factor that multiplies depth,
points and camera translations; the outputs say which source the scale came from (`ScaleSource`). Known intrinsics
are not offered: the network's depth scale does not follow from the focal length (its metric branch never sees it),
so replacing the intrinsics would change the shape, not fix the scale (docs/DESIGN.md "Scale anchors").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from vidllm_core.errors import DataError
from vidllm_core.geometry.unproject import confidence_mask
from vidllm_core.pipelines.gravity import GravityAlignment, estimate_gravity
from vidllm_core.pipelines.long_video import Similarity, transform_reconstruction
from vidllm_core.pipelines.reconstruct import Reconstruction


@dataclass(frozen=True)
class ScaleAnchor:
    """kind "known-distance" (metres between the camera centres of sampled frames `frames`) or "camera-height"
    (median camera height above the floor, metres)."""

    kind: str
    metres: float
    frames: tuple[int, int] | None = None


@dataclass(frozen=True)
class ScaleSource:
    """Where the output scale comes from: "model" (metric branch), "relative" (no metric branch), "known-distance"
    or "camera-height"; `factor` multiplied the model's reconstruction (1 for model / relative)."""

    kind: str
    factor: float
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"source": self.kind, "factor": self.factor, "detail": self.detail}


def _positive_metres(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise DataError(f"{what} must be a positive finite number of metres, got {value}")
    return float(value)


def parse_anchor(known_distance: str | None, camera_height: float | None) -> ScaleAnchor | None:
    """The anchor from the CLI values (`--known-distance A,B,METRES`, `--camera-height METRES`); DataError (one line)
    for conflicting anchors, malformed values, zero, negative or NaN distances."""
    if known_distance is not None and camera_height is not None:
        raise DataError("conflicting scale anchors: give either --known-distance or --camera-height, not both")
    if camera_height is not None:
        return ScaleAnchor("camera-height", _positive_metres(camera_height, "--camera-height"))
    if known_distance is None:
        return None
    parts = known_distance.split(",")
    try:
        a, b, metres = int(parts[0]), int(parts[1]), float(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise DataError(f"--known-distance must be FRAME_A,FRAME_B,METRES (e.g. 0,40,2.5), got '{known_distance}'")\
            from None
    if a == b:
        raise DataError(f"--known-distance needs two different frames, got {a} twice")
    return ScaleAnchor("known-distance", _positive_metres(metres, "--known-distance"), (a, b))


def gravity_of(rec: Reconstruction, seed: int = 0) -> GravityAlignment:
    """Floor + up axis (`pipelines.gravity.estimate_gravity`) from the confident half of the points and the cameras."""
    rot = rec.extrinsic[:, :, :3].astype(np.float64)
    down = rot[:, 1, :].mean(0)  # camera +y (image down) in world = row 1 of R
    centres = rec.camera_to_world()[:, :3, 3]
    keep = confidence_mask(rec.depth_conf, 50.0, valid=rec.valid_mask())   # the confident half
    points = rec.world_points[keep]
    step = max(1, len(points) // 200000)  # a deterministic subset bounds the memory on long videos
    return estimate_gravity(points[::step], down, centres, seed=seed)


def anchor_factor(rec: Reconstruction, anchor: ScaleAnchor) -> float:
    """The factor that gives `rec` the anchor's scale; DataError when the anchor cannot be measured in `rec`."""
    if anchor.kind == "known-distance":
        a, b = anchor.frames or (0, 0)
        for f in (a, b):
            if not 0 <= f < rec.num_frames:
                raise DataError(f"--known-distance frame {f} is out of range: the reconstruction has "
                                f"{rec.num_frames} frames (indices 0..{rec.num_frames - 1})")
        centres = rec.camera_to_world()[:, :3, 3]
        predicted = float(np.linalg.norm(centres[a] - centres[b]))
        if not predicted > 1e-9:
            raise DataError(f"--known-distance: frames {a} and {b} are at the same predicted position; pick frames "
                            "further apart")
        return anchor.metres / predicted
    gravity = gravity_of(rec)
    heights = rec.camera_to_world()[:, :3, 3] @ gravity.transform[:3, :3][2] + gravity.transform[2, 3]
    predicted = float(np.median(heights))
    if not predicted > 1e-9:
        raise DataError("--camera-height: no floor below the cameras was found in the reconstruction")
    return anchor.metres / predicted


def apply_anchor(rec: Reconstruction, anchor: ScaleAnchor | None) -> tuple[Reconstruction, ScaleSource]:
    """`rec` at the anchor's scale (or unchanged) and the record of where its scale came from."""
    if anchor is None:
        if rec.metric:
            return rec, ScaleSource("model", 1.0, f"metric depth alignment, scale {rec.scale:.4g}")
        return rec, ScaleSource("relative", 1.0, "no metric branch: relative units")
    factor = anchor_factor(rec, anchor)
    detail = (f"frames {anchor.frames[0]} and {anchor.frames[1]} are {anchor.metres:g} m apart"
              if anchor.frames is not None else f"cameras {anchor.metres:g} m above the floor")
    scaled = replace(transform_reconstruction(rec, Similarity(factor, np.eye(3), np.zeros(3))), metric=True)
    return scaled, ScaleSource(anchor.kind, factor, detail)


def gravity_align(rec: Reconstruction) -> tuple[Reconstruction, GravityAlignment]:
    """`rec` in a z-up world with the floor at z = 0 (rotation + shift, no scale change)."""
    gravity = gravity_of(rec)
    T = gravity.transform
    return transform_reconstruction(rec, Similarity(1.0, T[:3, :3], T[:3, 3])), gravity
