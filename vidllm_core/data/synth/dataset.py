"""Generate, write and read synthrooms datasets (ScanNet posed-images layout + real benchmark annotation files).

Reference: issue 3 items 5, 6 and 8; ScanNet conventions from ../shared/docs/FORMATS.md sec. 8 (uint16 depth in
millimetres, 4x4 camera-to-world poses in OpenCV axes, 4x4 intrinsics, zero-padded 5-digit frame names).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidllm_core.data.synth.camera import HFOV_DEG, intrinsics, sample_trajectory
from vidllm_core.data.synth.language import annotate_scene
from vidllm_core.data.synth.render import Frame, Renderer
from vidllm_core.data.synth.scene import Scene, load_layout, sample_room, sample_scene
from vidllm_core.errors import ConfigError, DataError
from vidllm_core.io import check_output, replace_dir, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    import trimesh

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
NR3D_COLUMNS = ["stimulus_id", "utterance", "correct_guess", "speaker_id", "listener_id", "scan_id", "instance_type",
                "target_id", "tokens", "dataset", "mentions_target_class", "uses_object_lang", "uses_spatial_lang",
                "uses_color_lang", "uses_shape_lang", "is_train"]
SR3D_COLUMNS = ["scan_id", "target_id", "distractor_ids", "utterance", "stimulus_id", "coarse_reference_type",
                "reference_type", "instance_type", "anchors_types", "anchor_ids", "tokens", "dataset",
                "mentions_target_class", "correct_guess", "is_train"]
_SQA_INFO = {"description": "synthrooms: procedurally generated SQA3D-style situated questions (vidllm).",
             "url": "", "version": "1.0", "year": 2026, "contributor": "vidllm synth", "date_created": ""}


@dataclass(frozen=True)
class SynthConfig:
    """Arguments of a synthrooms run; the same config and seed give identical files (except mp4 metadata)."""

    scenes: int = 20
    seed: int = 0
    frames: int = 48
    width: int = 224
    height: int = 168
    fps: int = 10
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    layout: str | None = None
    video: bool = True
    jpeg_quality: int = 92

    def validate(self) -> None:
        if not 1 <= self.scenes <= 100000:
            raise ConfigError(f"--scenes must be between 1 and 100000, got {self.scenes}")
        if not 2 <= self.frames <= 10000:
            raise ConfigError(f"--frames must be between 2 and 10000, got {self.frames}")
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096) or self.width % 2 or self.height % 2:
            raise ConfigError(f"--size must be WIDTHxHEIGHT with even numbers between 32 and 4096, got "
                              f"{self.width}x{self.height}")
        r = self.split_ratios
        if len(r) != 3 or any(not math.isfinite(v) or v < 0 for v in r) or abs(sum(r) - 1) > 1e-6:
            raise ConfigError(f"--split-ratios must be three non-negative numbers summing to 1, got {','.join(map(str, r))}")
        if not 1 <= self.fps <= 120:
            raise ConfigError(f"--fps must be between 1 and 120, got {self.fps}")

    @property
    def min_visible_pixels(self) -> int:
        """Total instance pixels (over all frames) an object needs to count as visible."""
        return max(20, round(0.001 * self.width * self.height))


def parse_size(text: str) -> tuple[int, int]:
    """'224x168' -> (224, 168); raises ConfigError."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--size must look like 224x168 (WIDTHxHEIGHT), got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--split-ratios must be three comma-separated numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(vals) != 3:
        raise ConfigError(f"--split-ratios must be three comma-separated numbers like 0.8,0.1,0.1, got {text!r}")
    return vals  # type: ignore[return-value]


def split_of(index: int, n: int, ratios: tuple[float, float, float]) -> str:
    """Scenes 0..n-1 are cut into train / val / test blocks of round(n * ratio) scenes."""
    n_train = round(n * ratios[0])
    n_val = min(round(n * ratios[1]), n - n_train)
    return "train" if index < n_train else "val" if index < n_train + n_val else "test"


def scene_name(index: int) -> str:
    return f"synth{index:04d}_00"


# --------------------------------------------------------------------------------------------- one scene
@dataclass
class SceneResult:
    scene: Scene
    poses: np.ndarray
    K: np.ndarray
    frames: list[Frame]
    visible_pixels: dict[int, int]
    visible_frames: dict[int, int]
    annotations: dict[str, list[dict]] = field(default_factory=dict)


def build_scene(cfg: SynthConfig, index: int, split: str = "train") -> SceneResult:
    """Sample (or load) scene `index`, walk the camera, render every frame and derive the annotations."""
    rng = np.random.default_rng([cfg.seed, index])
    sid = scene_name(index)
    if cfg.layout is not None:
        scene = load_layout(cfg.layout, sid)
        textured = sample_room(rng)
        for k in ("floor_style", "floor_rgb", "wall_rgb", "ceiling_rgb", "tile", "texture_seed"):
            setattr(scene.room, k, getattr(textured, k))
    else:
        scene = sample_scene(rng, sid)
    poses = sample_trajectory(rng, scene, cfg.frames)
    K = intrinsics(cfg.width, cfg.height)
    renderer = Renderer(scene, cfg.width, cfg.height, K)
    frames = [renderer.render(p) for p in poses]
    n = len(scene.objects) + 1
    counts = np.zeros(n, dtype=np.int64)
    nframes = np.zeros(n, dtype=np.int64)
    for fr in frames:
        c = np.bincount(fr.instance.ravel(), minlength=n)
        counts += c
        nframes += c > 0
    vis = {o.id: int(counts[o.id + 1]) for o in scene.objects}
    visf = {o.id: int(nframes[o.id + 1]) for o in scene.objects}
    res = SceneResult(scene, poses, K, frames, vis, visf)
    res.annotations = annotate_scene(scene, vis, cfg.min_visible_pixels, split,
                                     np.random.default_rng([cfg.seed, index, 1]), index)
    return res


def scene_json(res: SceneResult, cfg: SynthConfig, split: str) -> dict[str, Any]:
    sc = res.scene
    room = sc.room
    objects = []
    for o in sc.objects:
        centre, size = o.aabb()
        objects.append({
            "id": o.id, "category": o.category, "object_name": o.category.replace(" ", "_"), "colour": o.colour,
            "position": _r(o.position), "yaw": round(o.yaw, 6), "yaw_deg": round(math.degrees(o.yaw), 4),
            "front": _r(o.front), "size": _r(o.size), "support": o.support, "wall": o.wall,
            "aabb": {"center": _r(centre), "size": _r(size)},
            "obb": {"center": _r(o.obb_center()), "size": _r(o.size), "yaw": round(o.yaw, 6)},
            "primitives": [{"type": "box", "part": b.part, "center": _r(b.center), "size": _r(b.size),
                            "yaw": round(b.yaw, 6), "rgb": _r(b.rgb)} for b in o.parts],
            "visible_pixels": res.visible_pixels[o.id], "visible_frames": res.visible_frames[o.id],
            "visible": res.visible_pixels[o.id] >= cfg.min_visible_pixels,
        })
    return {
        "scene_id": sc.scene_id, "split": split, "format_version": FORMAT_VERSION,
        "frame": "world: metres, z up, floor z=0, room spans [0,W]x[0,D]x[0,H]; object front = (-sin yaw, cos yaw)",
        "room": {"size": [room.width, room.depth, room.height], "floor_style": room.floor_style,
                 "floor_rgb": [list(c) for c in room.floor_rgb], "wall_rgb": [list(c) for c in room.wall_rgb],
                 "ceiling_rgb": list(room.ceiling_rgb), "texture_seed": room.texture_seed},
        "axis_align_matrix": np.eye(4).tolist(),
        "image_size": [cfg.width, cfg.height], "hfov_deg": HFOV_DEG, "intrinsic": res.K.tolist(),
        "num_frames": len(res.frames), "fps": cfg.fps, "depth_shift": 1000, "instance_offset": 1,
        "min_visible_pixels": cfg.min_visible_pixels,
        "generator": {"seed": cfg.seed, "layout": Path(cfg.layout).name if cfg.layout else None},
        "objects": objects,
    }


def _r(a: Any, nd: int = 6) -> list[float]:
    return [round(float(v), nd) for v in np.asarray(a).ravel()]


def scene_mesh(scene: Scene) -> "trimesh.Trimesh":
    """Ground-truth surfaces: every box primitive (outward faces) + the room's inside faces, with vertex colours."""
    import trimesh

    meshes = []
    r = scene.room
    room = trimesh.creation.box(extents=[r.width, r.depth, r.height])
    room.apply_translation([r.width / 2, r.depth / 2, r.height / 2])
    room.invert()
    room.visual.vertex_colors = np.tile([200, 200, 200, 255], (len(room.vertices), 1))
    meshes.append(room)
    for b in scene.boxes():
        T = np.eye(4)
        c, s = math.cos(b.yaw), math.sin(b.yaw)
        T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
        T[:3, 3] = b.center
        m = trimesh.creation.box(extents=b.size, transform=T)
        m.visual.vertex_colors = np.tile(np.r_[np.round(b.rgb * 255), 255].astype(np.uint8), (len(m.vertices), 1))
        meshes.append(m)
    return trimesh.util.concatenate(meshes)


def _encode_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_scene(res: SceneResult, cfg: SynthConfig, scenes_dir: Path, split: str) -> Path:
    """Write one scene folder atomically (built beside the target, then renamed into place)."""
    from PIL import Image

    sid = res.scene.scene_id
    target = scenes_dir / sid
    tmp = Path(tempfile.mkdtemp(prefix=f".{sid}.", dir=scenes_dir))
    try:
        for sub in ("color", "depth", "instance", "pose"):
            (tmp / sub).mkdir()
        for i, (fr, pose) in enumerate(zip(res.frames, res.poses)):
            name = f"{i:05d}"
            Image.fromarray(fr.rgb).save(tmp / "color" / f"{name}.jpg", quality=cfg.jpeg_quality)
            depth_mm = np.clip(np.round(fr.depth.astype(np.float64) * 1000.0), 0, 65535).astype(np.uint16)
            Image.fromarray(depth_mm).save(tmp / "depth" / f"{name}.png", compress_level=1)
            Image.fromarray(fr.instance.astype(np.uint16)).save(tmp / "instance" / f"{name}.png", compress_level=1)
            np.savetxt(tmp / "pose" / f"{name}.txt", pose, fmt="%.8f")
        K4 = np.eye(4)
        K4[:3, :3] = res.K
        np.savetxt(tmp / "intrinsic.txt", K4, fmt="%.8f")
        np.savetxt(tmp / "depth_intrinsic.txt", K4, fmt="%.8f")
        meta = (f"axisAlignment = {' '.join(f'{v:f}' for v in np.eye(4).ravel())}\n"
                f"colorHeight = {cfg.height}\ncolorWidth = {cfg.width}\ndepthHeight = {cfg.height}\n"
                f"depthWidth = {cfg.width}\nfx_color = {res.K[0, 0]:f}\nfx_depth = {res.K[0, 0]:f}\n"
                f"fy_color = {res.K[1, 1]:f}\nfy_depth = {res.K[1, 1]:f}\nmx_color = {res.K[0, 2]:f}\n"
                f"mx_depth = {res.K[0, 2]:f}\nmy_color = {res.K[1, 2]:f}\nmy_depth = {res.K[1, 2]:f}\n"
                f"numColorFrames = {len(res.frames)}\nnumDepthFrames = {len(res.frames)}\n")
        (tmp / f"{sid}.txt").write_text(meta)
        (tmp / "scene.json").write_text(json.dumps(scene_json(res, cfg, split), indent=1) + "\n")
        scene_mesh(res.scene).export(tmp / "mesh.ply")
        if cfg.video:
            _encode_video(tmp / "video.mp4", [fr.rgb for fr in res.frames], cfg.fps)
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _link_posed_images(target, scenes_dir.parent / "posed_images", len(res.frames))
    return target


def _link_posed_images(scene_dir: Path, root: Path, n_frames: int) -> None:
    """Flat `posed_images/<scene>/NNNNN.{jpg,png,txt}` view (Video-3D-LLM layout, FORMATS.md 8.2) of a scene
    folder, made of hard links (copies where links are not supported)."""
    root.mkdir(exist_ok=True)
    sid = scene_dir.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{sid}.", dir=root))
    try:
        pairs = [(scene_dir / sub / f"{i:05d}.{ext}", f"{i:05d}.{flat}") for i in range(n_frames)
                 for sub, ext, flat in (("color", "jpg", "jpg"), ("depth", "png", "png"), ("pose", "txt", "txt"))]
        pairs += [(scene_dir / n, n) for n in ("intrinsic.txt", "depth_intrinsic.txt", f"{sid}.txt", "mesh.ply",
                                               "scene.json", "video.mp4") if (scene_dir / n).exists()]
        for src, name in pairs:
            try:
                os.link(src, tmp / name)
            except OSError:
                shutil.copyfile(src, tmp / name)
        replace_dir(tmp, root / sid)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- annotation files
def annotation_files(split: str) -> dict[str, str]:
    """Benchmark -> file name (the real benchmarks' names) inside OUT/annotations/."""
    return {"scanqa": f"ScanQA_v1.0_{split}.json",
            "sqa3d_questions": f"v1_balanced_questions_{split}_scannetv2.json",
            "sqa3d_annotations": f"v1_balanced_sqa_annotations_{split}_scannetv2.json",
            "scanrefer": f"ScanRefer_filtered_{split}.json", "multi3drefer": f"multi3drefer_{split}.json",
            "nr3d": f"nr3d_{split}.csv", "sr3d": f"sr3d_{split}.csv"}


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([repr(r[c]) if isinstance(r[c], list) else str(r[c]) for c in columns])
    return buf.getvalue()


def write_annotations(out: Path, split: str, recs: dict[str, list[dict]], scene_ids: list[str]) -> None:
    ann = out / "annotations"
    names = annotation_files(split)
    write_json_atomic(ann / names["scanqa"], recs["scanqa"], indent=None)
    head = {"info": _SQA_INFO, "license": {"url": "", "name": "generated data"}, "data_type": "synthrooms",
            "data_subtype": "v1"}
    write_json_atomic(ann / names["sqa3d_questions"],
                      {**head, "task_type": "Situated question answering", "questions": recs["sqa3d_questions"]}, indent=None)
    write_json_atomic(ann / names["sqa3d_annotations"], {**head, "annotations": recs["sqa3d_annotations"]}, indent=None)
    write_json_atomic(ann / names["scanrefer"], recs["scanrefer"], indent=None)
    write_text_atomic(ann / f"ScanRefer_filtered_{split}.txt", "".join(s + "\n" for s in scene_ids))
    write_json_atomic(ann / names["multi3drefer"], recs["multi3drefer"], indent=None)
    write_text_atomic(ann / names["nr3d"], _csv_text(recs["nr3d"], NR3D_COLUMNS))
    write_text_atomic(ann / names["sr3d"], _csv_text(recs["sr3d"], SR3D_COLUMNS))
    write_text_atomic(out / "splits" / f"synthrooms_{split}.txt", "".join(s + "\n" for s in scene_ids))


def check_writable(out: Path) -> None:
    """Create `out` after `vidllm_core.io.check_output` (ConfigError naming it when it cannot be written)."""
    check_output(out, "output directory")
    out.mkdir(parents=True, exist_ok=True)


def check_new_dataset(out: Path, overwrite: bool) -> None:
    """Refuse to write into a folder that already holds a synthrooms dataset unless `overwrite`: a re-run rewrites
    its annotation files and split lists (a smaller or different run would silently empty or change a split)."""
    found = [name for name in ("synthrooms.json", "annotations", "splits", "scenes") if (out / name).exists()]
    if found and not overwrite:
        raise DataError(f"{out} already holds a dataset ({', '.join(found)}); choose a new folder, or pass "
                        "--overwrite to rewrite its annotations and splits")


def generate_dataset(out: str | os.PathLike, cfg: SynthConfig,
                     progress: Callable[[int, str], None] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write `cfg.scenes` scenes, per-split annotation files and split lists under `out`; return a summary.
    An `out` that already holds a dataset is refused unless `overwrite` (see `check_new_dataset`)."""
    cfg.validate()
    if cfg.layout is not None:
        load_layout(cfg.layout, scene_name(0))  # fail before writing anything
    out = Path(out)
    check_new_dataset(out, overwrite)
    check_writable(out)
    scenes_dir = out / "scenes"
    scenes_dir.mkdir(exist_ok=True)
    per_split: dict[str, dict[str, list[dict]]] = {s: {} for s in SPLITS}
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    visible_total = objects_total = 0
    for i in range(cfg.scenes):
        split = split_of(i, cfg.scenes, cfg.split_ratios)
        res = build_scene(cfg, i, split)
        write_scene(res, cfg, scenes_dir, split)
        for k, v in res.annotations.items():
            per_split[split].setdefault(k, []).extend(v)
        ids[split].append(res.scene.scene_id)
        objects_total += len(res.scene.objects)
        visible_total += sum(v >= cfg.min_visible_pixels for v in res.visible_pixels.values())
        if progress is not None:
            progress(i + 1, res.scene.scene_id)
    write_gt_boxes(out)
    empty = {k: [] for k in annotation_files("train")}
    counts = {}
    for s in SPLITS:
        recs = {**empty, **per_split[s]}
        write_annotations(out, s, recs, ids[s])
        counts[s] = {k: len(v) for k, v in recs.items()}
    summary = {"format_version": FORMAT_VERSION,
               "config": {**{k: getattr(cfg, k) for k in ("scenes", "seed", "frames", "width", "height", "fps")},
                          "split_ratios": list(cfg.split_ratios), "layout": Path(cfg.layout).name if cfg.layout else None},
               "splits": ids, "annotation_counts": counts, "objects": objects_total, "visible_objects": visible_total}
    write_json_atomic(out / "synthrooms.json", summary)
    return summary


def write_gt_boxes(out: str | os.PathLike) -> Path:
    """`OUT/annotations/gt_boxes.json`: every object's axis-aligned box `{scene_id: {object_id: [cx,cy,cz,dx,dy,dz]}}`
    (metres, the scene's z-up frame), the GT-box file that ScanRefer / Multi3DRefer scoring and training read."""
    from vidllm_core.data.benchmarks.scannet import save_gt_boxes_file

    boxes = {}
    for meta_path in sorted(Path(out, "scenes").glob("*/scene.json")):
        meta = json.loads(meta_path.read_text())
        boxes[meta["scene_id"]] = {int(o["id"]): np.array([*o["aabb"]["center"], *o["aabb"]["size"]])
                                   for o in meta["objects"]}
    target = Path(out) / "annotations" / "gt_boxes.json"
    save_gt_boxes_file(target, boxes)
    return target


# --------------------------------------------------------------------------------------------- reader
@dataclass
class SceneData:
    """One scene read back from disk. Shapes: color (F, H, W, 3) uint8, depth (F, H, W) float32 metres (0 = none),
    instance (F, H, W) int32 (0 = room, object id + 1), poses (F, 4, 4) camera-to-world, intrinsic (4, 4)."""

    scene_id: str
    color: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    poses: np.ndarray
    intrinsic: np.ndarray
    meta: dict[str, Any]
    path: Path

    @property
    def objects(self) -> list[dict[str, Any]]:
        return self.meta["objects"]


def read_scene(path: str | os.PathLike) -> SceneData:
    """Read a scene folder written by `write_scene` (frames, depth in metres, poses, intrinsics, scene.json)."""
    from PIL import Image

    path = Path(path)
    meta_path = path / "scene.json"
    if not meta_path.is_file():
        raise DataError(f"not a synthrooms scene folder (no scene.json): {path}")
    meta = json.loads(meta_path.read_text())
    n = int(meta["num_frames"])
    names = [f"{i:05d}" for i in range(n)]
    try:
        color = np.stack([np.asarray(Image.open(path / "color" / f"{k}.jpg").convert("RGB")) for k in names])
        depth = np.stack([np.asarray(Image.open(path / "depth" / f"{k}.png")) for k in names]).astype(np.float32) / 1000.0
        inst = np.stack([np.asarray(Image.open(path / "instance" / f"{k}.png")) for k in names]).astype(np.int32)
        poses = np.stack([np.loadtxt(path / "pose" / f"{k}.txt") for k in names])
    except FileNotFoundError as e:
        raise DataError(f"scene {path.name} is incomplete: missing {e.filename}") from None
    return SceneData(meta["scene_id"], color, depth, inst, poses, np.loadtxt(path / "intrinsic.txt"), meta, path)


def read_split(out: str | os.PathLike, split: str) -> list[str]:
    p = Path(out) / "splits" / f"synthrooms_{split}.txt"
    if not p.is_file():
        raise DataError(f"no split list {p}")
    return [s for s in p.read_text().split("\n") if s]


def read_annotations(out: str | os.PathLike, split: str) -> dict[str, list[dict]]:
    """Every annotation file of a split parsed back into records (CSV list/bool columns decoded)."""
    import ast

    ann = Path(out) / "annotations"
    names = annotation_files(split)
    recs: dict[str, list[dict]] = {}
    for key in ("scanqa", "scanrefer", "multi3drefer"):
        recs[key] = json.loads((ann / names[key]).read_text())
    recs["sqa3d_questions"] = json.loads((ann / names["sqa3d_questions"]).read_text())["questions"]
    recs["sqa3d_annotations"] = json.loads((ann / names["sqa3d_annotations"]).read_text())["annotations"]
    for key in ("nr3d", "sr3d"):
        with open(ann / names[key], newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            for k, v in r.items():
                if v in ("True", "False"):
                    r[k] = v == "True"
                elif v.startswith("["):
                    r[k] = ast.literal_eval(v)
                elif k in ("target_id", "speaker_id", "listener_id"):
                    r[k] = int(v)
        recs[key] = rows
    return recs
