"""3D patch construction (Sec. 3.3, Eq. 3-4): patch back-projection against a hand computation, embedding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidllm_core.models.patch3d import Patch3DEmbedding, backproject_patches, backproject_pixels

P, GH, GW = 4, 3, 5
H, W = GH * P, GW * P
FX, FY, CX, CY = 30.0, 28.0, W / 2, H / 2


def _camera(angle: float = 0.4, t: tuple[float, float, float] = (0.3, -0.2, 1.5)) -> tuple[np.ndarray, np.ndarray]:
    """A camera-from-world extrinsic [R | t] (rotation about the y axis) and its intrinsics, in float64."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    extr = np.concatenate([rot, np.array(t)[:, None]], axis=1)
    intr = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]])
    return extr, intr


def test_plane_at_known_depth_matches_hand_computation() -> None:
    depth_value = 2.5
    extr, intr = _camera()
    depth = torch.full((1, H, W), depth_value, dtype=torch.float64)
    got = backproject_patches(depth, torch.from_numpy(extr)[None], torch.from_numpy(intr)[None], P, (GH, GW))
    assert got.shape == (1, GH, GW, 3)

    rot, t = extr[:, :3], extr[:, 3]
    for i in range(GH):
        for j in range(GW):
            # Patch centre in pixels (pixel centres at integer coordinates): the centroid of a plane patch
            # parallel to the image is the back-projection of that centre.
            u = j * P + (P - 1) / 2
            v = i * P + (P - 1) / 2
            x_cam = np.array([(u - CX) / FX * depth_value, (v - CY) / FY * depth_value, depth_value])
            world = rot.T @ x_cam - rot.T @ t  # Eq. 3: R^-1 K^-1 [u, v, 1]^T D - R^-1 t
            np.testing.assert_allclose(got[0, i, j].numpy(), world, rtol=0, atol=1e-12)


def test_pixels_float32_and_identity_camera() -> None:
    depth = torch.full((2, H, W), 3.0)
    extr = torch.cat([torch.eye(3), torch.zeros(3, 1)], 1).expand(2, 3, 4)
    intr = torch.tensor([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    pts = backproject_pixels(depth, extr, intr)
    assert pts.shape == (2, H, W, 3) and pts.dtype == torch.float32
    assert torch.allclose(pts[..., 2], torch.full((2, H, W), 3.0))
    # The principal point (an integer pixel here) lies on the optical axis.
    torch.testing.assert_close(pts[0, int(CY), int(CX)], torch.tensor([0.0, 0.0, 3.0]))
    torch.testing.assert_close(pts[0, 0, 0], torch.tensor([-CX / FX * 3.0, -CY / FY * 3.0, 3.0]))


def test_slanted_plane_patch_centroids_lie_on_the_plane() -> None:
    # World plane n . X = c seen by a rotated camera; the depth map is computed per pixel by ray casting.
    extr, intr = _camera(angle=-0.3, t=(0.1, 0.4, 2.0))
    rot, t = extr[:, :3], extr[:, 3]
    n_world, c_world = np.array([0.2, -0.3, 1.0]), 4.0
    cam_center = -rot.T @ t
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    rays_cam = np.stack([(u - CX) / FX, (v - CY) / FY, np.ones_like(u, dtype=float)], -1)  # z = 1
    rays_world = rays_cam @ rot  # R^T ray
    depth = (c_world - n_world @ cam_center) / (rays_world @ n_world)  # z-depth since ray z = 1
    assert (depth > 0).all()
    got = backproject_patches(torch.from_numpy(depth)[None], torch.from_numpy(extr)[None],
                              torch.from_numpy(intr)[None], P, (GH, GW))[0].numpy()
    np.testing.assert_allclose(got @ n_world, np.full((GH, GW), c_world), rtol=0, atol=1e-10)


def test_bad_shapes() -> None:
    extr, intr = _camera()
    with pytest.raises(ValueError, match="grid"):
        backproject_patches(torch.ones(1, H + 1, W), torch.from_numpy(extr)[None], torch.from_numpy(intr)[None],
                            P, (GH, GW))
    with pytest.raises(ValueError, match="extrinsic"):
        backproject_pixels(torch.ones(2, H, W), torch.from_numpy(extr)[None], torch.from_numpy(intr)[None])


def test_patch3d_embedding_adds_position_and_gets_gradients() -> None:
    torch.manual_seed(0)
    emb = Patch3DEmbedding(16, hidden_dim=8)
    lang = torch.randn(2, GH * GW, 16, requires_grad=True)
    points = torch.randn(2, GH, GW, 3)
    out = emb(lang, points)
    assert out.shape == (2, GH * GW, 16)
    torch.testing.assert_close(out, lang + emb.embed(points.reshape(2, -1, 3)))
    torch.testing.assert_close(emb(lang, points.reshape(2, -1, 3)), out)
    # Different positions -> different tokens.
    assert not torch.allclose(emb(lang, points + 1.0), out)
    out.square().mean().backward()
    assert lang.grad is not None and lang.grad.abs().sum() > 0
    for name, param in emb.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    with pytest.raises(ValueError):
        emb(lang, torch.randn(2, GH * GW + 1, 3))
