"""Output writers: PLY with confidence, cameras JSON, 16-bit depth PNGs, point gathering; all atomic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from vidllm_core import export
from vidllm_core.errors import DataError
from vidllm_core.export import (
    camera_to_world, points_from_prediction, read_ply_vertices, write_cameras_json, write_depth_pngs,
    write_point_cloud,
)


def _cloud(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3), dtype=np.uint8),
            rng.random(n).astype(np.float32))


def test_ply_round_trip_with_confidence(list_files, tmp_path: Path) -> None:
    pts, cols, conf = _cloud()
    path = tmp_path / "cloud.ply"
    write_point_cloud(path, pts, cols, conf)
    assert list_files(tmp_path) == ["cloud.ply"]
    mine = read_ply_vertices(path)
    assert np.array_equal(np.stack([mine["x"], mine["y"], mine["z"]], 1), pts)
    assert np.array_equal(np.stack([mine["red"], mine["green"], mine["blue"]], 1), cols)
    assert np.array_equal(mine["confidence"], conf)
    loaded = trimesh.load(path)  # a standard reader sees the same points and colours
    assert isinstance(loaded, trimesh.PointCloud)
    assert np.array_equal(np.asarray(loaded.vertices, dtype=np.float32), pts)
    assert np.array_equal(np.asarray(loaded.colors)[:, :3], cols)


def test_numpy_ply_fallback_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_ply_bytes_trimesh", lambda *a: None)  # as if trimesh dropped the property
    pts, cols, conf = _cloud(seed=1)
    path = tmp_path / "np.ply"
    write_point_cloud(path, pts, cols, conf)
    header = path.read_bytes().split(b"end_header")[0].decode()
    assert "property float confidence" in header and "alpha" not in header
    mine = read_ply_vertices(path)
    assert np.array_equal(mine["confidence"], conf) and np.array_equal(mine["z"], pts[:, 2])
    loaded = trimesh.load(path)
    assert np.array_equal(np.asarray(loaded.vertices, dtype=np.float32), pts)


def test_ply_without_confidence_and_empty(tmp_path: Path) -> None:
    pts, cols, _ = _cloud(5)
    write_point_cloud(tmp_path / "a.ply", pts, cols, None)
    assert "confidence" not in read_ply_vertices(tmp_path / "a.ply")
    write_point_cloud(tmp_path / "empty.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0))
    assert len(read_ply_vertices(tmp_path / "empty.ply")["x"]) == 0


def test_ply_write_failure_leaves_nothing(list_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError):
        write_point_cloud(tmp_path / "x.ply", *_cloud())
    assert list_files(tmp_path) == []


def _cameras(S: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    extr = np.zeros((S, 3, 4))
    for i in range(S):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        extr[i, :, :3] = q * np.sign(np.linalg.det(q))
        extr[i, :, 3] = rng.normal(size=3)
    K = np.tile(np.array([[50.0, 0, 28], [0, 50.0, 21], [0, 0, 1]]), (S, 1, 1))
    return extr, K


def test_camera_to_world_inverts_extrinsic() -> None:
    extr, _ = _cameras()
    c2w = camera_to_world(extr)
    w2c = np.concatenate([extr, np.tile([[[0, 0, 0, 1.0]]], (3, 1, 1))], axis=1)
    np.testing.assert_allclose(c2w @ w2c, np.tile(np.eye(4), (3, 1, 1)), atol=1e-12)


def test_cameras_json_schema(tmp_path: Path) -> None:
    extr, K = _cameras()
    c2w = camera_to_world(extr)
    path = tmp_path / "cams.json"
    write_cameras_json(path, source_indices=[0, 11, 23], timestamps=[0.0, 0.9166667, 1.9166667], camera_to_world=c2w,
                       intrinsics=K, width=56, height=42, metric=True, scale=2.5, source_intrinsics=K * 2,
                       extra={"source": "clip.mp4"})
    doc = json.loads(path.read_text())
    assert doc["format"] == "vidllm-cameras" and doc["version"] == 1 and doc["metric"] is True
    assert doc["units"] == "metres" and doc["scale"] == 2.5 and doc["source"] == "clip.mp4"
    assert [f["source_frame"] for f in doc["frames"]] == [0, 11, 23]
    assert [f["index"] for f in doc["frames"]] == [0, 1, 2]
    assert doc["frames"][1]["timestamp"] == pytest.approx(0.9166667)
    for f, expected in zip(doc["frames"], c2w):
        assert set(f) == {"index", "source_frame", "timestamp", "camera_to_world", "intrinsics", "width", "height",
                          "source_intrinsics"}
        assert np.allclose(np.array(f["camera_to_world"]), expected) and (f["width"], f["height"]) == (56, 42)
        assert np.allclose(np.array(f["intrinsics"]), K[0])


def test_cameras_json_rejects_nan(list_files, tmp_path: Path) -> None:
    extr, K = _cameras(1)
    c2w = camera_to_world(extr)
    c2w[0, 0, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        write_cameras_json(tmp_path / "c.json", source_indices=[0], timestamps=None, camera_to_world=c2w,
                           intrinsics=K, width=4, height=4, metric=False)
    assert list_files(tmp_path) == []


def test_depth_pngs_in_millimetres(list_files, tmp_path: Path) -> None:
    depth = np.random.default_rng(3).uniform(0.2, 9.0, size=(2, 7, 9))
    depth[0, 0, 0], depth[0, 0, 1], depth[0, 0, 2], depth[1, 6, 8] = np.nan, -1.0, np.inf, 70.0
    paths = write_depth_pngs(tmp_path / "depth", depth)
    assert [p.name for p in paths] == ["depth_0000.png", "depth_0001.png"]
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            assert img.mode == "I;16" and img.size == (9, 7)
            mm = np.asarray(img)
        assert mm.dtype == np.uint16
        ok = np.isfinite(depth[i]) & (depth[i] > 0) & (depth[i] < 65.0)
        assert np.array_equal(mm[ok], np.round(depth[i][ok] * 1000).astype(np.uint16))
    first = np.asarray(Image.open(paths[0]))
    assert first[0, :3].tolist() == [0, 0, 0]  # NaN, negative and inf are written as 0 (invalid)
    assert np.asarray(Image.open(paths[1]))[6, 8] == 65535  # saturates beyond 65.535 m
    assert list_files(tmp_path) == ["depth", "depth/depth_0000.png", "depth/depth_0001.png"]


def test_depth_pngs_replace_an_earlier_run_but_not_other_files(tmp_path: Path) -> None:
    out = tmp_path / "depth"
    write_depth_pngs(out, np.ones((3, 4, 4)))
    write_depth_pngs(out, np.full((1, 4, 4), 2.0))
    assert sorted(p.name for p in out.iterdir()) == ["depth_0000.png"]
    assert np.asarray(Image.open(out / "depth_0000.png"))[0, 0] == 2000
    (out / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="refusing to replace"):
        write_depth_pngs(out, np.ones((1, 4, 4)))
    assert (out / "mine.txt").exists()


def test_depth_failure_midway_leaves_nothing(list_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = Image.Image.save
    calls = []

    def flaky(self: Image.Image, fp: object, *a: object, **k: object) -> None:
        calls.append(fp)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", flaky)
    with pytest.raises(OSError):
        write_depth_pngs(tmp_path / "depth", np.ones((3, 4, 4)))
    assert list_files(tmp_path) == []


def _prediction() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    world = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    colors = rng.random((2, 3, 4, 5)).astype(np.float32)  # [S,3,H,W] in [0,1], like the network input
    conf = rng.permutation(40).reshape(2, 4, 5).astype(np.float32) + 1  # 1..40, all distinct
    return world, colors, conf


def test_points_percentile_filter_keeps_most_confident_half() -> None:
    world, colors, conf = _prediction()
    cloud = points_from_prediction(world, colors, conf)  # default: drop the lowest 50 %
    assert len(cloud.points) == 20 and cloud.confidence.min() >= 20.5
    flat = world.reshape(-1, 3)
    idx = [int(np.flatnonzero(np.all(flat == p, axis=1))[0]) for p in cloud.points]
    assert np.array_equal(cloud.confidence, conf.reshape(-1)[idx])
    expected_colors = np.round(np.moveaxis(colors, 1, -1).reshape(-1, 3)[idx] * 255).astype(np.uint8)
    assert np.array_equal(cloud.colors, expected_colors)


def test_points_threshold_mask_nan_voxel_and_cap() -> None:
    world, colors, conf = _prediction()
    world[0, 0, 0] = np.nan
    mask = np.ones((2, 4, 5), dtype=bool)
    mask[1] = False
    cloud = points_from_prediction(world, colors, conf, conf_percentile=None, conf_threshold=10.0, mask=mask)
    expected = (conf[0] >= 10).sum() - (conf[0, 0, 0] >= 10)
    assert len(cloud.points) == expected and np.isfinite(cloud.points).all()
    # voxel: all points in one big voxel (voxels are anchored at the origin) -> only the most confident survives
    one = points_from_prediction(world + 10.0, colors, conf, conf_percentile=None, voxel_size=100.0)
    assert len(one.points) == 1 and one.confidence[0] == conf[np.isfinite(world).all(-1)].max()
    octants = points_from_prediction(world, colors, conf, conf_percentile=None, voxel_size=100.0)
    assert len(octants.points) == len(np.unique(np.sign(world[np.isfinite(world).all(-1)]), axis=0))
    capped = points_from_prediction(world, colors, conf, conf_percentile=0, max_points=7)
    assert len(capped.points) == 7
    again = points_from_prediction(world, colors, conf, conf_percentile=0, max_points=7)
    assert np.array_equal(capped.points, again.points)  # seeded
    no_conf = points_from_prediction(world, (np.moveaxis(colors, 1, -1) * 255).astype(np.uint8), None)
    assert len(no_conf.points) == 39 and no_conf.confidence is None
