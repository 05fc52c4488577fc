"""Frame sources of the vision pass (not in the paper; its Sec. 4.1 samples 32 frames uniformly from a video): a video
file, a folder of images, or a posed ScanNet-layout scene folder (`posed_images/<scene>`: NNNNN.jpg colour, NNNNN.png
uint16-mm depth, NNNNN.txt camera-to-world pose). Each one gives uint8 RGB frames with ids, and the ground-truth
poses / depth where it has them. `open_frame_source(path)` picks the right one.
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidllm_core.data.video import Frames, probe, read_frames, read_image, sample_indices, stack_images
from vidllm_core.errors import DataError, VideoError
from vidllm_core.io import file_sha256

if TYPE_CHECKING:
    from vidllm_core.data.benchmarks.scannet import ScanNetScene

__all__ = ["FrameSource", "GroundTruth", "ImageFolderSource", "ScanNetSceneSource", "VideoFileSource",
           "is_scannet_scene_folder", "open_frame_source"]

_NUMBERED = re.compile(r"^(\d+)\.(jpg|jpeg|png|txt)$", re.IGNORECASE)


def _files_sha256(files: list[Path]) -> str:
    """sha256 over each file's name and content hash, in the given order."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode("utf-8") + b"\0" + file_sha256(f).encode("ascii"))
    return digest.hexdigest()


@dataclass(frozen=True)
class GroundTruth:
    """What a posed source knows about its sampled frames (ScanNet conventions).

    poses: float64 [S,4,4] camera-to-world (OpenCV axes) in the source's unaligned world; a frame without a pose file
    or with a non-finite pose (tracking failure) is all-NaN. depth_files: the uint16-millimetre depth PNG of each
    frame (None when absent). intrinsic_color / intrinsic_depth: 3x3 or None. axis_align: 4x4 (the `<scene>.txt`
    axis alignment; None when absent).
    """

    poses: np.ndarray
    depth_files: tuple[Path | None, ...]
    intrinsic_color: np.ndarray | None
    intrinsic_depth: np.ndarray | None
    axis_align: np.ndarray | None   # None: the scene has none (Placement.to_scene refuses; never a silent identity)

    def has_pose(self, index: int) -> bool:
        return bool(np.isfinite(self.poses[index]).all())

    def depth(self, index: int) -> np.ndarray | None:
        """Depth of sampled frame `index` in metres, float32 [h,w] (0 = invalid); None without a depth file."""
        from vidllm_core.data.benchmarks.scannet import read_depth_png

        path = self.depth_files[index]
        return None if path is None else read_depth_png(path)

    def depth_size(self, index: int) -> tuple[int, int] | None:
        """(width, height) of frame `index`'s depth image without decoding it; None without a depth file."""
        from PIL import Image

        path = self.depth_files[index]
        if path is None:
            return None
        try:
            with Image.open(path) as im:
                return im.size
        except OSError as exc:
            raise DataError(f"{path}: unreadable depth image ({exc})") from None


class FrameSource(ABC):
    """Where the frames of one vision pass come from.

    `read(num_frames)` samples `num_frames` uniformly (paper Sec. 4.1) and decodes them (`Frames`: uint8 RGB, ids,
    source indices); `ground_truth(frames)` returns the GT of those frames (None for sources without it);
    `fingerprint()` hashes the colour content (the scene-cache key). Errors are one-line `VideoError` / `DataError`.
    """

    kind: str = ""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames in the source (no decoding)."""

    @abstractmethod
    def read(self, num_frames: int) -> Frames:
        """`num_frames` uniformly sampled frames (fewer when the source is shorter)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """sha256 of the colour content."""

    def ground_truth(self, frames: Frames) -> GroundTruth | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.path}')"


class VideoFileSource(FrameSource):
    """A video file (decord, PyAV fallback; rotation metadata honoured by both)."""

    kind = "video"

    def __init__(self, path: str | os.PathLike, backend: str = "auto") -> None:
        super().__init__(path)
        self.backend = backend
        self.info = probe(self.path)   # a broken file fails here, before any work

    def __len__(self) -> int:
        return self.info.num_frames

    def read(self, num_frames: int) -> Frames:
        return read_frames(self.path, num_frames, backend=self.backend)

    def fingerprint(self) -> str:
        return file_sha256(self.path)


class ImageFolderSource(FrameSource):
    """A folder of .jpg/.jpeg/.png frames in natural name order (16-bit grey PNGs: see `video.rgb8`)."""

    kind = "images"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        self.info = probe(self.path)

    def __len__(self) -> int:
        return self.info.num_frames

    def read(self, num_frames: int) -> Frames:
        return read_frames(self.path, num_frames)

    def fingerprint(self) -> str:
        return _files_sha256(list(self.info.files))


class ScanNetSceneSource(FrameSource):
    """A posed ScanNet-layout scene folder: colour frames only (never the depth PNGs), with GT poses and depth."""

    kind = "scannet"

    def __init__(self, path: str | os.PathLike, scene: "ScanNetScene | None" = None) -> None:
        from vidllm_core.data.benchmarks import Problems
        from vidllm_core.data.benchmarks.scannet import load_scannet_scene

        super().__init__(path if scene is None else scene.root)
        self.scene = scene if scene is not None else load_scannet_scene(self.path, problems=Problems(strict=False))
        if not self.scene.frames:
            raise DataError(f"scene {self.scene.scene_id}: no colour frames (NNNNN.jpg) in {self.scene.root}")

    def __len__(self) -> int:
        return len(self.scene.frames)

    def read(self, num_frames: int) -> Frames:
        if num_frames < 1:
            raise VideoError(f"number of frames must be >= 1, got {num_frames}")
        idx = sample_indices(len(self.scene.frames), num_frames)
        frames = [self.scene.frames[int(i)] for i in idx]
        images = stack_images([read_image(f.color) for f in frames], self.path)
        return Frames(images=images, indices=idx, timestamps=None, fps=None, source=str(self.path), backend="scannet",
                      num_source_frames=len(self.scene.frames), ids=tuple(f.name for f in frames))

    def fingerprint(self) -> str:
        return _files_sha256([f.color for f in self.scene.frames])

    def ground_truth(self, frames: Frames) -> GroundTruth:
        from vidllm_core.data.benchmarks.scannet import read_matrix

        chosen = [self.scene.frames[int(i)] for i in frames.indices]
        poses = np.full((len(chosen), 4, 4), np.nan)
        for k, f in enumerate(chosen):
            if f.pose is None:
                continue
            try:
                pose = read_matrix(f.pose)
            except (DataError, OSError):
                continue   # an unreadable pose is a frame without GT, as a missing one
            if np.isfinite(pose).all():
                poses[k] = pose
        s = self.scene
        return GroundTruth(poses=poses, depth_files=tuple(f.depth for f in chosen),
                           intrinsic_color=None if s.intrinsic_color is None else s.intrinsic_color[:3, :3],
                           intrinsic_depth=None if s.intrinsic_depth is None else s.intrinsic_depth[:3, :3],
                           axis_align=None if s.axis_align is None else np.asarray(s.axis_align, dtype=np.float64))


def is_scannet_scene_folder(folder: Path) -> bool:
    """A ScanNet posed-images scene: `intrinsic.txt`, or numbered colour frames with a numbered `.txt` pose, or with a
    single-channel 16-bit `.png` (depth) of the same number (a folder holding each frame as .jpg and an RGB .png is an
    image folder)."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return False
    if "intrinsic.txt" in names:
        return True
    by_stem: dict[str, set[str]] = {}
    for name in names:
        m = _NUMBERED.match(name)
        if m:
            by_stem.setdefault(m.group(1), set()).add(m.group(2).lower())
    paired = [stem for stem, kinds in by_stem.items() if {"jpg", "jpeg"} & kinds]
    if any("txt" in by_stem[stem] for stem in paired):
        return True
    depth = next((folder / f"{stem}.png" for stem in paired if "png" in by_stem[stem]), None)
    return depth is not None and _is_16_bit_grey(depth)


def _is_16_bit_grey(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:   # reads the header only
            return im.mode.startswith("I")
    except OSError:
        return False


def open_frame_source(path: str | os.PathLike, backend: str = "auto") -> FrameSource:
    """The frame source of `path`: a ScanNet-layout scene folder, an image folder, or a video file (`backend` picks
    the video decoder: auto | decord | pyav). VideoError (one line) when `path` is none of them."""
    p = Path(path)
    if p.is_dir():
        return ScanNetSceneSource(p) if is_scannet_scene_folder(p) else ImageFolderSource(p)
    return VideoFileSource(p, backend=backend)

