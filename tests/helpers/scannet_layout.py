"""Build a tiny ScanNet-layout dataset in a temp folder: raw `scans/<scene>/` files (a PLY mesh whose objects are
boxes, segs.json, aggregation.json, `<scene>.txt` with a non-identity axisAlignment) and `posed_images/<scene>/`
frames, with the analytic boxes the prepare step must recover.

Scene and object ids (and labels) are copied from the real annotation samples in
../shared/fixtures/benchmarks (ScanQA val `val-scene0046-0` / `val-scene0050-0`, ScanRefer val, Sr3D test target,
distractor and anchor ids, SQA3D test questions 220602015954 / 220602000002); tests never read ../shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# scene -> {objectId: raw label}, from the real annotation files (see the module docstring).
SCENE_OBJECTS: dict[str, dict[int, str]] = {
    "scene0046_00": {0: "picture", 3: "bed", 11: "laptop", 21: "door", 26: "door", 31: "toilet",
                     32: "toilet flush button", 47: "pillow"},
    "scene0050_00": {1: "piano", 4: "chair", 5: "desk", 8: "doors", 9: "door", 15: "printer", 16: "shelf",
                     18: "backpack", 25: "laptop", 29: "stool", 32: "doors"},
}


def alignment_for(scene_id: str) -> np.ndarray:
    """A non-identity rigid axis alignment (rotation about z + translation), different per scene."""
    k = sum(map(ord, scene_id)) % 7
    a = np.deg2rad(19.0 + 11.0 * k)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = [-2.5 - 0.3 * k, 1.7, -0.064]
    return m


def analytic_box(scene_id: str, index: int) -> np.ndarray:
    """[cx, cy, cz, dx, dy, dz] in the ALIGNED frame: object `index` of the scene on a 4-wide grid."""
    base = 0.37 * (sum(map(ord, scene_id)) % 5)
    return np.array([0.5 + 1.3 * (index % 4) + base, 0.4 + 1.1 * (index // 4), 0.3 + 0.05 * index,
                     0.4 + 0.1 * (index % 3), 0.3 + 0.07 * index, 0.2 + 0.05 * (index % 4)])


@dataclass(frozen=True)
class ScanNetLayout:
    """Paths of the built dataset and what the prepare step must find."""

    root: Path
    scans: Path
    posed_images: Path
    expected_boxes: dict[str, dict[int, np.ndarray]]   # aligned frame, metres
    alignments: dict[str, np.ndarray]
    labels: dict[str, dict[int, str]]


def _corners(box: np.ndarray) -> np.ndarray:
    c, h = box[:3], box[3:] / 2
    return np.array([[c[0] + sx * h[0], c[1] + sy * h[1], c[2] + sz * h[2]]
                     for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])


def write_scan(scan_dir: Path, scene_id: str, objects: dict[int, str], align: np.ndarray) -> dict[int, np.ndarray]:
    """The four raw files of one scan; returns the analytic aligned boxes. Each object is two segments of four
    box corners; one extra "floor" segment belongs to no object and must not change any box."""
    import trimesh

    scan_dir.mkdir(parents=True, exist_ok=True)
    inv = np.linalg.inv(align)
    verts, seg_indices, groups, boxes = [], [], [], {}
    for i, (oid, label) in enumerate(sorted(objects.items())):
        box = analytic_box(scene_id, i)
        boxes[oid] = box
        raw = _corners(box) @ inv[:3, :3].T + inv[:3, 3]          # unaligned (raw scan) coordinates
        verts.append(raw)
        seg_a, seg_b = 1000 + 10 * i, 1000 + 10 * i + 3
        seg_indices += [seg_a] * 4 + [seg_b] * 4
        groups.append({"id": i, "objectId": oid, "segments": [seg_a, seg_b], "label": label})
    floor = np.array([[-9.0, -9.0, -0.5], [9.0, -9.0, -0.5], [9.0, 9.0, -0.5], [-9.0, 9.0, -0.5]])
    verts.append(floor @ inv[:3, :3].T + inv[:3, 3])
    seg_indices += [7] * 4
    vertices = np.concatenate(verts)
    faces = np.array([[j, j + 1, j + 2] for j in range(0, len(vertices) - 2, 4)])
    trimesh.Trimesh(vertices, faces, process=False).export(scan_dir / f"{scene_id}_vh_clean_2.ply")
    (scan_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(
        {"params": {"kThresh": "0.0001", "segMinVerts": "20"}, "sceneId": f"{scene_id}_vh_clean_2",
         "segIndices": seg_indices}))
    (scan_dir / f"{scene_id}.aggregation.json").write_text(json.dumps(
        {"sceneId": f"scannet.{scene_id}", "appId": "Aggregator.v2", "segGroups": groups,
         "segmentsFile": f"scannet.{scene_id}_vh_clean_2.0.010000.segs.json"}))
    (scan_dir / f"{scene_id}.txt").write_text(
        "axisAlignment = " + " ".join(f"{v:.9f}" for v in align.ravel()) + "\n"
        "colorHeight = 968\ncolorWidth = 1296\ndepthHeight = 480\ndepthWidth = 640\nsceneType = Bathroom\n")
    return boxes


def write_posed_images(scene_dir: Path, frames: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> None:
    """`NNNNN.jpg` colour, `NNNNN.png` uint16-mm depth, `NNNNN.txt` camera-to-world pose (every 10th frame, as
    the export scripts name them), `intrinsic.txt` and `depth_intrinsic.txt` (FORMATS.md 8.2)."""
    from PIL import Image

    scene_dir.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(seed)
    k = np.array([[60.0, 0, w / 2 - 0.5, 0], [0, 60.0, h / 2 - 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.savetxt(scene_dir / "intrinsic.txt", k, fmt="%f")
    np.savetxt(scene_dir / "depth_intrinsic.txt", k, fmt="%f")
    for f in range(frames):
        name = f"{10 * f:05d}"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(scene_dir / f"{name}.jpg")
        depth = (1500 + 40 * f + rng.integers(0, 200, (h, w))).astype(np.uint16)
        Image.fromarray(depth).save(scene_dir / f"{name}.png")
        a = 0.15 * f
        pose = np.eye(4)
        pose[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        pose[:3, 3] = [0.1 * f, 0.0, -0.05 * f]
        np.savetxt(scene_dir / f"{name}.txt", pose, fmt="%f")


def build_scannet_layout(root: str | Path, scenes: dict[str, dict[int, str]] | None = None,
                         frames: int = 4) -> ScanNetLayout:
    """`root/scans/<scene>/...` and `root/posed_images/<scene>/...` for every scene (default SCENE_OBJECTS)."""
    root = Path(root)
    scenes = SCENE_OBJECTS if scenes is None else scenes
    boxes, aligns = {}, {}
    for i, (scene_id, objects) in enumerate(sorted(scenes.items())):
        aligns[scene_id] = alignment_for(scene_id)
        boxes[scene_id] = write_scan(root / "scans" / scene_id, scene_id, objects, aligns[scene_id])
        write_posed_images(root / "posed_images" / scene_id, frames, seed=i)
    return ScanNetLayout(root, root / "scans", root / "posed_images", boxes, aligns,
                         {s: dict(o) for s, o in scenes.items()})
