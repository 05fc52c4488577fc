"""ScanNet scene folders as used by video 3D-LLMs: `posed_images/<scene>/` frames (colour, uint16-mm depth,
4x4 camera-to-world pose), intrinsics, the `<scene>.txt` axis alignment, and GT object boxes from the raw scan
files (FORMATS.md sec. 8; AABB rule of Video-3D-LLM `extract_scannet_pcd.py:get_aabbs`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidllm_core.data.benchmarks._common import Problems, read_json, scene_path
from vidllm_core.errors import DataError

_FRAME = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
DEPTH_SHIFT = 1000.0   # ScanNet depth PNGs are millimetres


@dataclass(frozen=True)
class PosedFrame:
    """One extracted frame: `NNNNN.jpg` (colour), `NNNNN.png` (depth, uint16 mm, may be absent), `NNNNN.txt`."""

    name: str                  # zero-padded frame index, e.g. "00010"
    color: Path
    depth: Path | None
    pose: Path | None


@dataclass(frozen=True)
class ScanNetScene:
    """A `posed_images/<scene_id>/` folder. Matrices are float64 4x4 numpy arrays."""

    scene_id: str
    root: Path
    frames: tuple[PosedFrame, ...]
    intrinsic_color: np.ndarray | None     # `intrinsic.txt` (fx, fy on the diagonal, cx, cy in column 2)
    intrinsic_depth: np.ndarray | None     # `depth_intrinsic.txt`
    axis_align: np.ndarray | None          # None when unknown (never a silent identity; see load_scannet_scene)
    has_axis_align: bool                   # False also when identity was explicitly allowed for a missing one

    def pose(self, frame: PosedFrame) -> np.ndarray:
        """4x4 camera-to-world (OpenCV camera axes) in the *unaligned* ScanNet world; may contain -inf."""
        if frame.pose is None:
            raise DataError(f"{self.root}: frame {frame.name} has no pose file {frame.name}.txt")
        return read_matrix(frame.pose)

    def depth(self, frame: PosedFrame) -> np.ndarray:
        """Depth in metres, float32 (H, W); 0 = invalid."""
        if frame.depth is None:
            raise DataError(f"{self.root}: frame {frame.name} has no depth file {frame.name}.png")
        return read_depth_png(frame.depth)

    def color(self, frame: PosedFrame) -> np.ndarray:
        """Colour image, uint8 (H, W, 3)."""
        from PIL import Image

        with Image.open(frame.color) as im:
            return np.asarray(im.convert("RGB"))


def read_matrix(path: str | os.PathLike, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Read a whitespace-separated matrix text file (np.loadtxt convention); DataError when malformed."""
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric matrix ({exc})") from None
    if m.size != shape[0] * shape[1]:
        raise DataError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, found {m.size} numbers")
    return m.reshape(shape)


def read_depth_png(path: str | os.PathLike, depth_shift: float = DEPTH_SHIFT) -> np.ndarray:
    """uint16 PNG in millimetres -> float32 metres (0 stays 0 = invalid)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except OSError as exc:
        raise DataError(f"{path}: unreadable depth image ({exc})") from None
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise DataError(f"{path}: depth must be a single-channel 16-bit PNG (got {arr.dtype} {arr.shape})")
    return arr.astype(np.float32) / np.float32(depth_shift)


def read_axis_alignment(meta_path: str | os.PathLike) -> np.ndarray | None:
    """`axisAlignment = m00 m01 ... m33` (16 floats, row-major) from a ScanNet `<scene>.txt`; None if absent."""
    for line in Path(meta_path).read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            try:
                nums = [float(v) for v in value.split()]
            except ValueError:
                nums = []
            if len(nums) != 16:
                raise DataError(f"{meta_path}: axisAlignment must have 16 numbers, found {len(value.split())}")
            return np.asarray(nums, dtype=np.float64).reshape(4, 4)
    return None


def load_scannet_scene(scene_dir: str | os.PathLike, scene_id: str | None = None,
                       problems: Problems | None = None, *, axis_align: np.ndarray | None = None,
                       allow_missing_alignment: bool = False) -> ScanNetScene:
    """Index a posed-images scene folder. Missing depth/pose files, unreadable matrices and an empty folder are
    problems (raised, or listed with a lenient `Problems`); frames are sorted by index.

    Axis alignment: `axis_align` when given (a prepared folder's), else `<scene_id>.txt` in the folder, else None
    (whoever places boxes refuses), or identity with `has_axis_align=False` when `allow_missing_alignment`."""
    root = Path(scene_dir)
    problems = problems if problems is not None else Problems()
    scene_id = scene_id or root.name
    if not root.is_dir():
        raise DataError(f"scene folder not found: {root}")
    frames = []
    names = {p.name for p in root.iterdir()}
    for name in sorted(names):
        m = _FRAME.match(name)
        if not m or m.group(2).lower() == "png":
            continue
        stem = m.group(1)
        depth = root / f"{stem}.png" if f"{stem}.png" in names else None
        pose = root / f"{stem}.txt" if f"{stem}.txt" in names else None
        if pose is None:
            problems.add(f"{root}: frame {stem} has no pose file {stem}.txt")
        frames.append(PosedFrame(stem, root / name, depth, pose))
    if not frames:
        problems.add(f"{root}: no colour frames (NNNNN.jpg) in the scene folder")
    frames.sort(key=lambda f: int(f.name))
    intr = {}
    for key, fname in (("color", "intrinsic.txt"), ("depth", "depth_intrinsic.txt")):
        intr[key] = None
        if fname in names:
            try:
                intr[key] = read_matrix(root / fname)
            except DataError as exc:
                problems.add(str(exc))
    if intr["color"] is None and "intrinsic.txt" not in names:
        problems.add(f"{root}: no intrinsic.txt (colour intrinsics)")
    align, has_align = (np.eye(4) if allow_missing_alignment else None), False
    meta = root / f"{scene_id}.txt"
    if axis_align is not None:
        align, has_align = np.asarray(axis_align, dtype=np.float64).reshape(4, 4), True
    elif meta.is_file():
        try:
            found = read_axis_alignment(meta)
        except DataError as exc:
            problems.add(str(exc))
            found = None
        if found is not None:
            align, has_align = found, True
    return ScanNetScene(scene_id, root, tuple(frames), intr["color"], intr["depth"], align, has_align)


def open_scene(scenes_dir: str | os.PathLike, scene_id: str, problems: Problems | None = None, *,
               axis_align: np.ndarray | None = None, allow_missing_alignment: bool = False) -> ScanNetScene:
    """`load_scannet_scene(scenes_dir/scene_id)`, refusing scene ids that would escape `scenes_dir`."""
    return load_scannet_scene(scene_path(scenes_dir, scene_id), scene_id, problems, axis_align=axis_align,
                              allow_missing_alignment=allow_missing_alignment)


def validate_frames(scene: ScanNetScene, problems: Problems) -> int:
    """Read every pose of the scene; list unreadable or non-finite ones (tracking failures). Returns #valid."""
    valid = 0
    for f in scene.frames:
        if f.pose is None:
            continue
        try:
            pose = read_matrix(f.pose)
        except DataError as exc:
            problems.add(str(exc))
            continue
        if not np.isfinite(pose).all():
            problems.add(f"{f.pose}: pose has inf/nan (tracking failure; the frame is skipped)")
            continue
        valid += 1
    return valid


# --- GT object boxes -------------------------------------------------------------------------------------------

def boxes_from_scannet_scan(scan_dir: str | os.PathLike, scene_id: str | None = None, *,
                            allow_missing_alignment: bool = False) -> dict[int, np.ndarray]:
    """Axis-aligned GT boxes `{objectId: [cx, cy, cz, dx, dy, dz]}` (metres, aligned frame) from raw ScanNet files
    (`scannet_scan.scan_objects`). A missing `<scene>.txt` is an error unless `allow_missing_alignment`."""
    from vidllm_core.data.benchmarks.scannet_scan import scan_objects

    return scan_objects(scan_dir, scene_id, allow_missing_alignment=allow_missing_alignment).boxes()


def _boxes_array(value: object, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64) if isinstance(value, (list, np.ndarray)) else None
    if arr is None or arr.ndim != 2 or (arr.size and arr.shape[1] != 6) or not np.isfinite(arr).all():
        raise DataError(f"{where}: boxes must be a list of [cx, cy, cz, dx, dy, dz] (finite numbers)")
    if arr.size and (arr[:, 3:] < 0).any():
        raise DataError(f"{where}: box sizes must not be negative")
    return arr.reshape(-1, 6)


def load_gt_boxes_file(path: str | os.PathLike) -> dict[str, dict[int, np.ndarray]]:
    """GT boxes `{scene_id: {object_id: [cx, cy, cz, dx, dy, dz]}}` from one JSON file (object ids as keys)."""
    obj = read_json(path, "GT boxes")
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected {{scene_id: {{object_id: [cx,cy,cz,dx,dy,dz]}}}}")
    out: dict[str, dict[int, np.ndarray]] = {}
    for scene_id, objs in obj.items():
        if not isinstance(objs, dict):
            raise DataError(f"{path}: scene {scene_id!r}: expected an object mapping object ids to boxes")
        scene = {}
        for oid, box in objs.items():
            try:
                key = int(oid)
            except ValueError:
                raise DataError(f"{path}: scene {scene_id!r}: object id {oid!r} is not an integer") from None
            scene[key] = _boxes_array([box], f"{path}: scene {scene_id!r} object {oid}")[0]
        out[scene_id] = scene
    return out


def save_gt_boxes_file(path: str | os.PathLike, boxes: dict[str, dict[int, np.ndarray]]) -> None:
    """Write the format `load_gt_boxes_file` reads (atomically)."""
    from vidllm_core.io import write_json_atomic

    write_json_atomic(path, {s: {str(k): [float(x) for x in v] for k, v in objs.items()} for s, objs in boxes.items()})


def read_scene_list(path: str | os.PathLike, problems: Problems | None = None) -> list[str]:
    """Scene ids from a text file (one per line, like `scannetv2_val.txt`) or a JSON list of strings."""
    from vidllm_core.data.benchmarks._common import scene_id_problem

    path = Path(path)
    problems = problems if problems is not None else Problems()
    if not path.is_file():
        raise DataError(f"scene list not found: {path}")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        ids = read_json(path, "scene list")
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids or not isinstance(ids, list):
        raise DataError(f"{path}: expected scene ids (one per line or a JSON list of strings)")
    out: list[str] = []
    for i, sid in enumerate(ids):
        bad = scene_id_problem(sid)
        if bad:
            problems.add(f"{path}: entry {i}: {bad}")
        elif sid in out:
            problems.add(f"{path}: entry {i}: duplicate scene id {sid!r}")
        else:
            out.append(sid)
    return out
