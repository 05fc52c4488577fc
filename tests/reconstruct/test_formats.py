"""Exports: COLMAP text/binary read back by pycolmap, GLB opened by trimesh, nerfstudio transforms, preview PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reconstruct.helpers import room_reconstruction
from vidllm_core.formats.colmap import write_colmap
from vidllm_core.formats.glb import write_glb
from vidllm_core.formats.nerfstudio import write_transforms_json
from vidllm_core.formats.preview import write_preview


@pytest.fixture()
def room():
    rec = room_reconstruction(num_frames=6)
    cloud = rec.point_cloud(conf_percentile=None)
    return rec, cloud


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_colmap_reads_back_with_pycolmap(room, tmp_path: Path, kind: str) -> None:
    pycolmap = pytest.importorskip("pycolmap")
    rec, cloud = room
    names = [f"frame_{i:04d}.png" for i in range(rec.num_frames)]
    write_colmap(tmp_path, camera_to_world=rec.camera_to_world(), intrinsics=rec.intrinsic, width=rec.width,
                 height=rec.height, image_names=names, points=cloud.points, colors=cloud.colors,
                 text=kind == "text", binary=kind == "binary")
    model = pycolmap.Reconstruction()
    getattr(model, f"read_{kind}")(str(tmp_path))
    assert len(model.images) == rec.num_frames and len(model.points3D) == len(cloud.points)
    for image_id, image in model.images.items():
        i = names.index(image.name)
        pose = image.cam_from_world()
        np.testing.assert_allclose(pose.matrix(), np.linalg.inv(rec.camera_to_world()[i])[:3], atol=1e-6)
        cam = model.cameras[image.camera_id]
        assert (cam.width, cam.height) == (rec.width, rec.height)
        K = rec.intrinsic[i]
        np.testing.assert_allclose(cam.params, [K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5], rtol=1e-6)
        # the same camera: COLMAP's projection of a world point equals ours (+0.5 pixel-origin shift)
        p = rec.world_points[i, 3, 5].astype(np.float64)
        uv = cam.img_from_cam(pose.matrix()[:, :3] @ p + pose.matrix()[:, 3])
        np.testing.assert_allclose(uv, [5.5, 3.5], atol=1e-3)
    xyz = np.array([model.points3D[j].xyz for j in sorted(model.points3D)])
    rgb = np.array([model.points3D[j].color for j in sorted(model.points3D)])
    np.testing.assert_allclose(xyz, cloud.points, atol=1e-5)
    np.testing.assert_array_equal(rgb, cloud.colors)


def test_glb_opens_with_trimesh(room, tmp_path: Path) -> None:
    import trimesh

    rec, cloud = room
    write_glb(tmp_path / "scene.glb", points=cloud.points, colors=cloud.colors,
              camera_to_world=rec.camera_to_world(), intrinsics=rec.intrinsic, width=rec.width, height=rec.height)
    scene = trimesh.load(tmp_path / "scene.glb")
    clouds = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    paths = [g for g in scene.geometry.values() if isinstance(g, trimesh.path.Path3D)]
    assert len(clouds) == 1 and len(clouds[0].vertices) == len(cloud.points)
    assert len(paths) == rec.num_frames
    np.testing.assert_array_equal(clouds[0].colors[:, :3], cloud.colors)


def test_transforms_json_is_opengl(room, tmp_path: Path) -> None:
    rec, _ = room
    names = [f"images/frame_{i:04d}.png" for i in range(rec.num_frames)]
    write_transforms_json(tmp_path / "transforms.json", camera_to_world=rec.camera_to_world(),
                          intrinsics=rec.intrinsic, width=rec.width, height=rec.height, file_paths=names,
                          ply_file_path="points.ply")
    doc = json.loads((tmp_path / "transforms.json").read_text())
    assert doc["w"] == rec.width and doc["h"] == rec.height and doc["ply_file_path"] == "points.ply"
    assert doc["cx"] == pytest.approx(float(rec.intrinsic[0, 0, 2]) + 0.5)
    frame = doc["frames"][2]
    assert frame["file_path"] == names[2]
    pose = np.array(frame["transform_matrix"])
    # OpenGL: the camera looks down -z, so a point in front of the OpenCV camera has negative z in camera space
    p = rec.world_points[2, 6, 8].astype(np.float64)
    cam = np.linalg.inv(pose) @ np.append(p, 1.0)
    assert cam[2] == pytest.approx(-float(rec.depth[2, 6, 8]), rel=1e-5)
    assert cam[1] / -cam[2] * frame["fl_y"] == pytest.approx((frame["cy"] - 0.5) - 6, abs=1e-3)  # y up


def test_preview_png(room, tmp_path: Path) -> None:
    from PIL import Image

    rec, cloud = room
    write_preview(tmp_path / "p.png", points=cloud.points, colors=cloud.colors, camera_to_world=rec.camera_to_world(),
                  size=64)
    image = np.asarray(Image.open(tmp_path / "p.png"))
    assert image.shape == (64, 128, 3)
    for half in (image[:, :64], image[:, 64:]):  # both views show points, not only background
        assert (half != 255).any(axis=-1).mean() > 0.05
