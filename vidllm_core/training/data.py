"""Training data: S-frame clips of ScanNet-format scene folders with GT geometry (Vid-LLM Sec. 4.1: 32 uniformly
sampled frames, shorter side 518, crop to multiples of 14) plus, for Stage 2, benchmark language samples by scene.

Scene layouts read: `posed_images/<scene>/NNNNN.{jpg,png,txt}` + `intrinsic.txt` / `depth_intrinsic.txt` (FORMATS.md
sec. 8.2) and the ScanNet SensReader layout `color/N.jpg`, `depth/N.png`, `pose/N.txt`, `intrinsic/intrinsic_*.txt`.
Sampling is a pure function of (seed, epoch, index), so a resumed run sees exactly the same clips.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vidllm_core.errors import DataError
from vidllm_core.geometry.box_frame import BoxFrame, box_frame_from_scene
from vidllm_core.training.language_samples import LanguageSample, choose_samples

_NUM = re.compile(r"^(\d+)\.(jpg|jpeg|png|txt)$", re.IGNORECASE)


@dataclass(frozen=True)
class SceneIndex:
    """Frames of one scene with finite poses. Matrices are float64; depth is uint16 millimetres (0 = invalid)."""

    scene_id: str
    colors: tuple[Path, ...]
    depths: tuple[Path, ...]
    cam_to_world: np.ndarray  # [F, 4, 4]
    intrinsic_color: np.ndarray  # [3, 3]
    intrinsic_depth: np.ndarray | None  # [3, 3]
    axis_align: np.ndarray | None  # [4, 4]; None when the scene has none (boxes cannot be placed; never identity)


def _read_matrix(path: Path) -> np.ndarray:
    from vidllm_core.data.benchmarks.scannet import read_matrix

    return read_matrix(path)


def index_scene(root: str | Path, axis_align: np.ndarray | None = None) -> SceneIndex:
    """Index one scene folder (either layout); frames without depth or with a non-finite pose are dropped.
    The axis alignment is `axis_align` (a prepared folder's), else the folder's `<scene>.txt`, else None."""
    from vidllm_core.data.benchmarks.scannet import read_axis_alignment

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"scene folder not found: {root}")
    scene_id = root.name
    if (root / "color").is_dir():
        meta = root / f"{scene_id}.txt"
        align = axis_align if axis_align is not None else (read_axis_alignment(meta) if meta.is_file() else None)
        colors, depths, poses = [], [], []
        for p in sorted((root / "color").iterdir(), key=lambda q: (len(q.stem), q.stem)):
            m = _NUM.match(p.name)
            if not m or m.group(2).lower() not in ("jpg", "jpeg", "png"):
                continue
            d, t = root / "depth" / f"{m.group(1)}.png", root / "pose" / f"{m.group(1)}.txt"
            if d.is_file() and t.is_file():
                colors.append(p), depths.append(d), poses.append(t)
        intr_dir = root / "intrinsic"
        k_color = intr_dir / "intrinsic_color.txt"
        if not k_color.is_file():
            raise DataError(f"{root}: no intrinsic/intrinsic_color.txt")
        kc = _read_matrix(k_color)[:3, :3]
        kd_path = intr_dir / "intrinsic_depth.txt"
        kd = _read_matrix(kd_path)[:3, :3] if kd_path.is_file() else None
    else:
        from vidllm_core.data.benchmarks.scannet import load_scannet_scene

        scene = load_scannet_scene(root, scene_id, axis_align=axis_align)
        if scene.intrinsic_color is None:
            raise DataError(f"{root}: no intrinsic.txt (colour intrinsics)")
        colors = [f.color for f in scene.frames if f.depth is not None and f.pose is not None]
        depths = [f.depth for f in scene.frames if f.depth is not None and f.pose is not None]
        poses = [f.pose for f in scene.frames if f.depth is not None and f.pose is not None]
        kc = scene.intrinsic_color[:3, :3]
        kd = scene.intrinsic_depth[:3, :3] if scene.intrinsic_depth is not None else None
        align = scene.axis_align
    mats = [_read_matrix(p) for p in poses]
    keep = [i for i, m in enumerate(mats) if np.isfinite(m).all()]
    if not keep:
        raise DataError(f"{root}: no frame with colour, depth and a finite pose")
    return SceneIndex(scene_id, tuple(colors[i] for i in keep), tuple(depths[i] for i in keep),
                      np.stack([mats[i] for i in keep]), kc, kd, align)


def sample_frames(num_available: int, num_frames: int, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """Frame indices (sorted) of one clip. uniform: evenly spaced over the scene (the paper); window: consecutive
    frames from a random start; random: distinct random frames. Fewer available frames than asked: repeats (uniform)."""
    if sampling == "uniform" or num_available <= num_frames:
        return np.round(np.linspace(0, num_available - 1, num_frames)).astype(np.int64)
    if sampling == "window":
        start = int(rng.integers(0, num_available - num_frames + 1))
        return np.arange(start, start + num_frames)
    return np.sort(rng.choice(num_available, size=num_frames, replace=False))


def output_intrinsics(k: np.ndarray, info: Any) -> np.ndarray:
    """3x3 colour intrinsics at the source resolution -> the camera of the preprocessed image (ResizeInfo)."""
    sx, sy = info.resized_width / info.source_width, info.resized_height / info.source_height
    out = np.array(k, dtype=np.float64)
    out[0, 0], out[1, 1], out[0, 1] = k[0, 0] * sx, k[1, 1] * sy, k[0, 1] * sx
    out[0, 2] = (k[0, 2] + 0.5) * sx - 0.5 - info.crop_left + info.pad_left
    out[1, 2] = (k[1, 2] + 0.5) * sy - 0.5 - info.crop_top + info.pad_top
    return out


def depth_to_output(depth_m: np.ndarray, info: Any, k_color: np.ndarray, k_depth: np.ndarray | None,
                    color_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour depth (metres, 0 = invalid) at every preprocessed output pixel: output pixel -> source
    colour pixel (ResizeInfo) -> ray (colour intrinsics) -> depth pixel (depth intrinsics, or the size ratio)."""
    h, w = info.height, info.width
    v, u = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x, y = info.output_to_source(u, v)
    dh, dw = depth_m.shape
    if k_depth is not None:
        rx = (x - k_color[0, 2]) / k_color[0, 0]
        ry = (y - k_color[1, 2]) / k_color[1, 1]
        xd, yd = k_depth[0, 0] * rx + k_depth[0, 2], k_depth[1, 1] * ry + k_depth[1, 2]
    else:
        xd, yd = (x + 0.5) * dw / color_hw[1] - 0.5, (y + 0.5) * dh / color_hw[0] - 0.5
    ix, iy = np.rint(xd).astype(np.int64), np.rint(yd).astype(np.int64)
    inside = (ix >= 0) & (ix < dw) & (iy >= 0) & (iy < dh)
    out = np.zeros((h, w), dtype=np.float32)
    out[inside] = depth_m[iy[inside], ix[inside]].astype(np.float32)
    out[~np.isfinite(out)] = 0.0
    return out


def box_frame_of_clip(scene: SceneIndex, first_frame: int) -> BoxFrame:
    """The box frame (`geometry.box_frame`) of a clip: the reconstruction's world is the clip's first camera, which
    the GT pose and the scene's axis alignment place in the benchmark frame of the GT boxes."""
    if scene.axis_align is None:
        raise DataError(f"scene {scene.scene_id}: {_NO_ALIGNMENT}")
    return box_frame_from_scene(scene.axis_align @ scene.cam_to_world[first_frame])


_NO_ALIGNMENT = ("no axis alignment (GT boxes cannot be placed): point data.scenes at the folder `vidllm prepare "
                 "scannet` writes (it reads scans/<scene>/<scene>.txt; --allow-missing-alignment there records "
                 "identity)")


class SceneClips(Dataset):
    """One item per scene: an S-frame clip with GT geometry (and language samples when given).

    Item keys: images [S,3,H,W] float in [0,1]; depth [S,H,W] metres; valid [S,H,W] bool; extrinsics [S,3,4]
    camera-from-world; intrinsics [S,3,3] at (H, W); scene_id str; prompts list[TaskPrompt]; boxes list of [G,6]
    tensors in the clip's box frame (`geometry.box_frame`) or None; box_frame [4,4] box frame from the
    reconstruction world (the clip's first camera), which the model applies to its token positions. `set_epoch`
    changes the random clip choice; uniform sampling ignores it.
    """

    def __init__(self, scenes_dir: str | Path, scene_ids: Sequence[str] | None = None, *, frames: int = 32,
                 sampling: str = "uniform", image_size: int = 518, mode: str = "short_side", patch_size: int = 14,
                 seed: int = 0, language: dict[str, list[LanguageSample]] | None = None,
                 max_language_samples: int = 4, load_geometry: bool = True,
                 task_weights: dict[str, float] | None = None) -> None:
        from vidllm_core.data.prepared import is_prepared, load_prepared

        root = Path(scenes_dir)
        if not root.is_dir():
            raise DataError(f"data.scenes folder not found: {root}")
        prepared = load_prepared(root) if is_prepared(root) else None   # `vidllm prepare scannet` output
        if scene_ids is None:
            scene_ids = prepared.scene_ids if prepared is not None else sorted(
                p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not scene_ids:
            raise DataError(f"no scene folders in {root}")
        self.scenes = [index_scene(root / s) if prepared is None else
                       index_scene(prepared.posed_images(s), prepared.axis_align(s)) for s in scene_ids]
        self.frames, self.sampling, self.image_size, self.mode = frames, sampling, image_size, mode
        self.patch_size, self.seed, self.epoch = patch_size, seed, 0
        self.language = language or {}
        self.max_language_samples = max_language_samples
        self.task_weights = dict(task_weights or {})
        self.load_geometry = load_geometry
        self.proposals: Any = None  # training.proposals.TrainProposals: proposals for the grounding samples

    @property
    def language(self) -> dict[str, list[LanguageSample]]:
        return self._language

    @language.setter
    def language(self, samples: dict[str, list[LanguageSample]]) -> None:
        """Language samples by scene id; refused (one line) for scenes whose boxes cannot be placed."""
        missing = [s.scene_id for s in self.scenes if samples.get(s.scene_id) and s.axis_align is None]
        if missing:
            raise DataError(f"{len(missing)} scene(s) with language samples have {_NO_ALIGNMENT} "
                            f"(e.g. {missing[0]})")
        self._language = samples

    def __len__(self) -> int:
        return len(self.scenes)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        from vidllm_core.data.benchmarks.scannet import read_depth_png
        from vidllm_core.data.preprocess import preprocess_with_info

        scene = self.scenes[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        idx = sample_frames(len(scene.colors), self.frames, self.sampling, rng)
        pil = []
        for i in idx:
            try:
                with Image.open(scene.colors[i]) as im:
                    pil.append(im.convert("RGB"))
            except OSError as exc:
                raise DataError(f"{scene.colors[i]}: unreadable image ({exc})") from None
        images, infos = preprocess_with_info(pil, self.mode, self.image_size, self.patch_size)
        item: dict[str, Any] = {"images": images, "scene_id": scene.scene_id}
        if self.load_geometry:
            depth = [depth_to_output(read_depth_png(scene.depths[i]), info,
                                     scene.intrinsic_color, scene.intrinsic_depth, (im.height, im.width))
                     for i, info, im in zip(idx, infos, pil)]
            w2c = np.linalg.inv(scene.cam_to_world[idx])
            item["depth"] = torch.from_numpy(np.stack(depth))
            item["valid"] = item["depth"] > 0
            item["extrinsics"] = torch.from_numpy(w2c[:, :3, :]).float()
            item["intrinsics"] = torch.from_numpy(
                np.stack([output_intrinsics(scene.intrinsic_color, info) for info in infos])).float()
            samples = self.language.get(scene.scene_id, [])
            chosen = choose_samples(samples, self.max_language_samples, self.task_weights, rng) if samples else []
            frame = box_frame_of_clip(scene, int(idx[0])) if chosen or scene.axis_align is not None else None
            item["prompts"] = [s.prompt_in(frame, None if self.proposals is None or s.prompt_box is None else
                                           self.proposals.caption_box(scene.scene_id, s.prompt_box, rng))
                               for s in chosen]
            item["box_frame"] = (torch.full((4, 4), float("nan")) if frame is None  # no prompt uses it (Stage 1)
                                 else torch.from_numpy(frame.box_from_world).float())
            item["boxes"] = [None if s.box_world is None else
                             torch.from_numpy(frame.boxes_from_scene(s.box_world)).float() for s in chosen]
            if self.proposals is not None:
                item["proposals"] = self.proposals.for_clip(scene.scene_id, frame, [s.box_world for s in chosen],
                                                            rng)
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors along a new batch axis; keep strings and per-item lists as lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if isinstance(values[0], Tensor) else values
    return out
