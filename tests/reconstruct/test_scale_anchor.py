"""Scale anchors (known distance, camera height) and gravity alignment on an exact box room."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reconstruct.helpers import room_reconstruction
from vidllm_core.errors import DataError
from vidllm_core.pipelines.long_video import Similarity, transform_reconstruction
from vidllm_core.pipelines.scale_anchor import ScaleAnchor, apply_anchor, gravity_align, parse_anchor


@pytest.fixture()
def half_scale():
    gt = room_reconstruction(num_frames=8, height=24, width=32)
    return gt, transform_reconstruction(gt, Similarity(0.5, np.eye(3), np.zeros(3)))


def test_known_distance_restores_the_scale(half_scale) -> None:
    gt, rec = half_scale
    true = float(np.linalg.norm(gt.camera_to_world()[0, :3, 3] - gt.camera_to_world()[7, :3, 3]))
    out, source = apply_anchor(rec, parse_anchor(f"0,7,{true}", None))
    assert source.kind == "known-distance" and source.factor == pytest.approx(2.0)
    np.testing.assert_allclose(out.depth, gt.depth, rtol=1e-5)
    np.testing.assert_allclose(out.world_points, gt.world_points, atol=1e-5)


def test_camera_height_restores_the_scale(half_scale) -> None:
    gt, rec = half_scale  # cameras 1.5 m above the floor (OpenCV y = +1.5)
    out, source = apply_anchor(rec, ScaleAnchor("camera-height", 1.5))
    assert source.kind == "camera-height" and source.factor == pytest.approx(2.0, rel=1e-2)  # floor fit: RANSAC median
    assert "1.5 m above the floor" in source.detail


def test_no_anchor_reports_the_models_scale(half_scale) -> None:
    _, rec = half_scale
    out, source = apply_anchor(rec, None)
    assert out is rec and source.kind == "model" and source.factor == 1.0


def test_gravity_align_puts_floor_at_zero_and_z_up(half_scale) -> None:
    gt, _ = half_scale
    out, gravity = gravity_align(gt)
    assert gravity.method == "ransac"
    np.testing.assert_allclose(out.camera_to_world()[:, 2, 3], 1.5, atol=1e-2)  # camera heights (RANSAC fit)
    assert np.percentile(out.world_points[..., 2], 1) == pytest.approx(0.0, abs=1e-2)
    np.testing.assert_allclose(out.depth, gt.depth, rtol=1e-6)  # rigid: depth unchanged


@pytest.mark.parametrize("distance, height, message", [
    ("0,4,2.0", 1.6, "conflicting scale anchors"),
    ("0,4,0", None, "must be a positive finite number"),
    ("0,4,nan", None, "must be a positive finite number"),
    ("0,4,-1", None, "must be a positive finite number"),
    ("0,4", None, "must be FRAME_A,FRAME_B,METRES"),
    ("3,3,1.0", None, "two different frames"),
    (None, float("nan"), "--camera-height must be a positive finite number"),
])
def test_bad_anchors_are_one_line_errors(distance, height, message) -> None:
    with pytest.raises(DataError, match=message):
        parse_anchor(distance, height)


def test_anchor_frames_out_of_range(half_scale) -> None:
    _, rec = half_scale
    with pytest.raises(DataError, match="frame 8 is out of range"):
        apply_anchor(rec, parse_anchor("0,8,1.0", None))
