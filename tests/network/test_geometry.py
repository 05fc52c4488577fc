"""Pose encoding <-> extrinsics/intrinsics, unprojection, SE(3) inverse and confidence filtering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidllm_core.geometry.pose_encoding import (
    extri_intri_to_pose_encoding,
    mat_to_quat,
    pose_encoding_to_extri_intri,
    quat_to_mat,
)
from vidllm_core.geometry.unproject import (
    closed_form_inverse_se3,
    confidence_mask,
    depth_to_camera_points,
    unproject_depth_to_world,
)


def _random_poses(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    t = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return torch.cat((quat_to_mat(q), t[:, :, None]), dim=-1)


def test_quaternion_round_trip_including_near_180_degrees() -> None:
    rot = _random_poses(500)[:, :, :3]
    # rotations by ~pi about axes: the stable branch selection matters here
    axes = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    angle = math.pi - 1e-7
    q_pi = torch.cat((axes * math.sin(angle / 2), torch.full((50, 1), math.cos(angle / 2), dtype=torch.float64)), -1)
    rot = torch.cat((rot, quat_to_mat(q_pi), torch.eye(3, dtype=torch.float64)[None]))
    q = mat_to_quat(rot)
    assert torch.allclose(q.norm(dim=-1), torch.ones(len(q), dtype=torch.float64))
    assert (q[:, 3] >= 0).all()
    assert torch.allclose(quat_to_mat(q), rot, atol=1e-9)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(len(rot), dtype=torch.float64))


def test_pose_encoding_round_trip_and_conventions() -> None:
    h, w = 42, 56
    extr = _random_poses(6).reshape(2, 3, 3, 4)
    fov = torch.tensor([0.9, 1.1], dtype=torch.float64)
    intr = torch.zeros(2, 3, 3, 3, dtype=torch.float64)
    intr[..., 0, 0] = (w / 2) / math.tan(fov[1] / 2)
    intr[..., 1, 1] = (h / 2) / math.tan(fov[0] / 2)
    intr[..., 0, 2], intr[..., 1, 2], intr[..., 2, 2] = w / 2, h / 2, 1
    enc = extri_intri_to_pose_encoding(extr, intr, (h, w))
    assert enc.shape == (2, 3, 9)
    assert torch.allclose(enc[..., 7], fov[0].expand(2, 3)) and torch.allclose(enc[..., 8], fov[1].expand(2, 3))
    assert torch.allclose(enc[..., :3], extr[..., :3, 3])
    extr2, intr2 = pose_encoding_to_extri_intri(enc, (h, w))
    assert torch.allclose(extr2, extr, atol=1e-9) and torch.allclose(intr2, intr, atol=1e-9)


def test_unprojection_matches_a_numpy_pinhole_model() -> None:
    g = torch.Generator().manual_seed(3)
    depth = torch.rand(2, 5, 7, 1, generator=g, dtype=torch.float64) + 0.5
    extr = _random_poses(2, seed=4)
    intr = torch.tensor([[10.0, 0, 3.5], [0, 12.0, 2.5], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3)
    world = unproject_depth_to_world(depth, extr, intr)
    assert world.shape == (2, 5, 7, 3)
    for i in range(2):
        k, e, d = intr[i].numpy(), extr[i].numpy(), depth[i, ..., 0].numpy()
        v, u = np.mgrid[0:5, 0:7]  # pixel centres at integer coordinates
        cam = np.stack([(u - k[0, 2]) * d / k[0, 0], (v - k[1, 2]) * d / k[1, 1], d], -1)
        ref = (cam - e[:, 3]) @ e[:, :3]  # R^T (x - t)
        assert np.allclose(world[i].numpy(), ref)
        # and projecting back with the extrinsic gives the camera points again
        back = world[i].numpy() @ e[:, :3].T + e[:, 3]
        assert np.allclose(back, depth_to_camera_points(depth[i], intr[i]).numpy())


def test_closed_form_inverse_se3() -> None:
    extr = _random_poses(4)
    inv = closed_form_inverse_se3(extr)
    full = torch.cat((extr, torch.tensor([0, 0, 0, 1.0], dtype=torch.float64).expand(4, 1, 4)), dim=1)
    assert inv.shape == (4, 4, 4)
    assert torch.allclose(inv @ full, torch.eye(4, dtype=torch.float64).expand(4, 4, 4), atol=1e-12)
    assert torch.allclose(closed_form_inverse_se3(full), inv)


def test_confidence_mask() -> None:
    conf = torch.arange(1, 101, dtype=torch.float32).reshape(10, 10)
    conf[0, 0] = float("nan")
    keep = confidence_mask(conf, percentile=50)
    finite = conf[torch.isfinite(conf)].numpy()
    assert keep.sum().item() == int((finite >= np.percentile(finite, 50)).sum())
    assert not keep[0, 0]
    assert confidence_mask(conf, threshold=91).sum().item() == 10
    # one rule (`export.points_from_prediction` too): the percentile is taken over what the threshold kept
    assert confidence_mask(conf, percentile=50, threshold=91).sum().item() == 5
    np.testing.assert_array_equal(confidence_mask(conf.numpy(), percentile=50), keep.numpy())   # numpy in, numpy out
    assert confidence_mask(conf, valid=conf > 50).sum().item() == 50
    assert confidence_mask(conf).sum().item() == 99
    with pytest.raises(ValueError):
        confidence_mask(conf, percentile=101)
