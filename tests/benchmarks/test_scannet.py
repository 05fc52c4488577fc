"""ScanNet posed-image scene folders, axis alignment, raw-scan GT boxes and proposals (FORMATS.md sec. 8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidllm_core.data.benchmarks import (Problems, boxes_from_scannet_scan, load_gt_boxes_file,
                                         load_scannet_scene, open_scene, read_scene_list, save_gt_boxes_file)
from vidllm_core.data.benchmarks.scannet import validate_frames
from vidllm_core.errors import DataError

ALIGN = np.array([[0.945519, 0.325568, 0, -5.38439], [-0.325568, 0.945519, 0, -2.87178], [0, 0, 1, -0.06435],
                  [0, 0, 0, 1]])   # scene0000_00's axisAlignment (FORMATS.md 8.1)


def make_scene(root: Path, scene_id: str = "scene0000_00", n: int = 3, bad_pose: bool = False) -> Path:
    d = root / scene_id
    d.mkdir(parents=True)
    for i in range(n):
        name = f"{i * 10:05d}"
        Image.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)).save(d / f"{name}.jpg")
        Image.fromarray(np.full((6, 8), 1000 + 500 * i, np.uint16)).save(d / f"{name}.png")
        pose = np.eye(4)
        pose[0, 3] = 0.1 * i
        if bad_pose and i == 1:
            pose[:] = -np.inf
        np.savetxt(d / f"{name}.txt", pose, fmt="%f")
    np.savetxt(d / "intrinsic.txt", np.diag([1170.0, 1170.0, 1.0, 1.0]), fmt="%f")
    np.savetxt(d / "depth_intrinsic.txt", np.diag([572.0, 572.0, 1.0, 1.0]), fmt="%f")
    (d / f"{scene_id}.txt").write_text("axisAlignment = " + " ".join(f"{v:f}" for v in ALIGN.ravel())
                                       + "\ncolorHeight = 968\n")
    return d


def test_posed_images_folder(tmp_path: Path) -> None:
    make_scene(tmp_path)
    scene = open_scene(tmp_path, "scene0000_00")
    assert [f.name for f in scene.frames] == ["00000", "00010", "00020"]
    assert scene.has_axis_align and np.allclose(scene.axis_align, ALIGN)
    assert scene.intrinsic_color[0, 0] == 1170.0 and scene.intrinsic_depth[0, 0] == 572.0
    depth = scene.depth(scene.frames[1])
    assert depth.dtype == np.float32 and depth.shape == (6, 8) and np.allclose(depth, 1.5)   # mm -> m
    assert scene.pose(scene.frames[2])[0, 3] == pytest.approx(0.2)
    assert scene.color(scene.frames[1]).shape == (6, 8, 3)


def test_scene_without_meta_has_no_alignment_and_problems_listed(tmp_path: Path) -> None:
    d = make_scene(tmp_path, bad_pose=True)
    (d / "scene0000_00.txt").unlink()
    (d / "00020.txt").unlink()
    problems = Problems(strict=False)
    scene = load_scannet_scene(d, problems=problems)
    assert not scene.has_axis_align and scene.axis_align is None      # never a silent identity
    allowed = load_scannet_scene(d, allow_missing_alignment=True, problems=Problems(strict=False))
    assert not allowed.has_axis_align and np.array_equal(allowed.axis_align, np.eye(4))
    given = load_scannet_scene(d, axis_align=ALIGN, problems=Problems(strict=False))
    assert given.has_axis_align and np.array_equal(given.axis_align, ALIGN)
    assert any("00020" in m for m in problems.messages)
    assert validate_frames(scene, problems) == 1 and any("inf" in m for m in problems.messages)
    with pytest.raises(DataError, match="no pose file"):
        load_scannet_scene(d)
    with pytest.raises(DataError, match="escape"):
        open_scene(tmp_path, "../scene0000_00")


def write_raw_scan(root: Path, scene_id: str, objects: dict[int, np.ndarray], align: np.ndarray | None = None) -> None:
    """A raw ScanNet scan: mesh vertices (two corners per object), segs and aggregation files, meta."""
    import trimesh

    d = root / scene_id
    d.mkdir(parents=True, exist_ok=True)
    verts, segs, groups = [], [], []
    inv = np.linalg.inv(align) if align is not None else np.eye(4)
    for k, (oid, box) in enumerate(objects.items()):
        lo, hi = box[:3] - box[3:] / 2, box[:3] + box[3:] / 2
        for corner in (lo, hi, (lo + hi) / 2):
            verts.append((inv @ np.append(corner, 1))[:3])   # stored unaligned, as in ScanNet
            segs.append(100 + k)
        groups.append({"objectId": oid, "label": "chair", "segments": [100 + k]})
    faces = np.array([[0, 1, 2]])
    trimesh.Trimesh(np.array(verts), faces, process=False).export(d / f"{scene_id}_vh_clean_2.ply")
    (d / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": segs}))
    (d / f"{scene_id}.aggregation.json").write_text(json.dumps({"segGroups": groups}))
    if align is not None:
        (d / f"{scene_id}.txt").write_text("axisAlignment = " + " ".join(f"{v:.9f}" for v in align.ravel()) + "\n")


def test_gt_boxes_from_raw_scan_after_alignment(tmp_path: Path) -> None:
    boxes = {3: np.array([1.0, 2.0, 0.5, 0.4, 0.6, 1.0]), 7: np.array([-1.0, 0.0, 1.0, 2.0, 1.0, 0.2])}
    write_raw_scan(tmp_path, "scene0000_00", boxes, ALIGN)
    got = boxes_from_scannet_scan(tmp_path / "scene0000_00")
    assert set(got) == {3, 7}
    for oid, box in boxes.items():
        assert np.allclose(got[oid], box, atol=1e-5)


def test_gt_boxes_file(tmp_path: Path) -> None:
    boxes = {"scene0000_00": {3: np.array([1, 2, 3, 1, 1, 1.0])}}
    save_gt_boxes_file(tmp_path / "gt.json", boxes)
    assert np.array_equal(load_gt_boxes_file(tmp_path / "gt.json")["scene0000_00"][3], boxes["scene0000_00"][3])


def test_scene_list(tmp_path: Path) -> None:
    (tmp_path / "val.txt").write_text("scene0000_00\nscene0001_00")     # no trailing newline, like ScanNet's lists
    assert read_scene_list(tmp_path / "val.txt") == ["scene0000_00", "scene0001_00"]
    (tmp_path / "bad.txt").write_text("scene0000_00\n../etc\n")
    with pytest.raises(DataError, match="escape"):
        read_scene_list(tmp_path / "bad.txt")
