"""The vision pass, one owner (Vid-LLM Sec. 3.1-3.3, Fig. 2): frames of any `FrameSource` -> preprocessing as the
model was trained (Sec. 4.1) -> encoder + Cross-Task Adapter -> metric reconstruction (Sec. 3.2) [-> 3D patch tokens
and voxel pooling (Sec. 3.3)] -> one finiteness check -> placement in the source's GT frame -> one typed `Scene`.

Used by `vidllm ask | caption | ground | reconstruct`, the model-driven `vidllm eval` hooks (geometry and language)
and `benchmarks/ask.py`. The model answers `encode_scene(images) -> SceneEncoding` (tokens=True) or
`reconstruct(images) -> SceneGeometry` (tokens=False), images [S,3,H,W] in [0,1], and exposes its preprocessing
(`pipelines.reconstruct.preprocess_settings`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vidllm_core.data.frames import FrameSource, GroundTruth, open_frame_source
from vidllm_core.data.video import Frames
from vidllm_core.errors import DataError
from vidllm_core.pipelines.reconstruct import Reconstruction, check_finite, preprocess_settings

if TYPE_CHECKING:
    from vidllm_core.language.cache import SceneCache
    from vidllm_core.models.vidllm import SceneEncoding

__all__ = ["Placement", "Scene", "place_in_ground_truth", "run_vision_pass"]


@dataclass(frozen=True)
class Placement:
    """How the reconstruction enters the source's GT frame (rigid; the scale stays the model's own).

    anchor: index (in the sampled frames) of the first frame with a finite GT pose; anchor_id its frame id.
    to_gt: float64 4x4, reconstruction world (first camera) -> GT world (ScanNet: unaligned), `c2w_gt[a] @ w2c[a]`.
    axis_align: float64 4x4, GT world -> axis-aligned scene frame of GT boxes (None when the source has none).
    """

    anchor: int
    anchor_id: str
    to_gt: np.ndarray
    axis_align: np.ndarray | None   # None when the source has no axis alignment (to_scene refuses)

    @property
    def to_scene(self) -> np.ndarray:
        """float64 4x4: reconstruction world -> the axis-aligned scene frame (GT boxes, proposals)."""
        if self.axis_align is None:
            raise DataError("the scene has no axis alignment (<scene>.txt), so the reconstruction cannot be placed "
                            "in the frame of its GT boxes: use the folder `vidllm prepare scannet` writes, or "
                            "--allow-missing-alignment to use identity")
        return self.axis_align @ self.to_gt


@dataclass
class Scene:
    """The result of one vision pass.

    source: where the frames came from. frames: the sampled source frames (`Frames`: ids, source indices,
    timestamps, fps, backend; `frames.images` is empty when the scene came from the cache). reconstruction: the
    metric reconstruction at network resolution with each frame's `ResizeInfo` (numpy). encoding: the language
    tokens + geometry on the model's device (None when the pass ran without tokens). ground_truth / placement: the
    source's GT of the sampled frames and the map into its frame (None for sources without GT poses).
    timings: seconds per stage. cached / cache_key: whether the scene cache answered, and its key.
    """

    source: FrameSource
    frames: Frames
    reconstruction: Reconstruction
    encoding: "SceneEncoding | None" = None
    ground_truth: GroundTruth | None = None
    placement: Placement | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    cache_key: str | None = None

    @property
    def images(self) -> np.ndarray:
        """uint8 [S,H,W,3]: the preprocessed frames the network saw."""
        return self.reconstruction.colors

    @property
    def frame_ids(self) -> list[str]:
        return list(self.frames.ids)

    @property
    def source_frames(self) -> list[int]:
        """Position of each sampled frame in the source."""
        return [int(i) for i in self.frames.indices]

    def require_placement(self) -> Placement:
        """The placement, or DataError (one line) when no sampled frame has a GT pose."""
        if self.placement is None:
            raise DataError(f"{self.source.path}: none of the {len(self.frames.ids)} sampled frames has a valid GT "
                            "pose, so the reconstruction cannot be placed in the scene's frame")
        return self.placement


def place_in_ground_truth(reconstruction: Reconstruction, frames: Frames,
                          gt: GroundTruth | None) -> Placement | None:
    """`Placement` through the GT pose of the first sampled frame that has one; None without any."""
    if gt is None:
        return None
    anchor = next((i for i in range(len(gt.poses)) if gt.has_pose(i)), None)
    if anchor is None:
        return None
    w2c = np.linalg.inv(reconstruction.camera_to_world()[anchor])
    return Placement(anchor, frames.ids[anchor], gt.poses[anchor] @ w2c, gt.axis_align)


def run_vision_pass(model: Any, source: FrameSource | str | os.PathLike, *, num_frames: int | None = None,
                    tokens: bool = False, cache: "SceneCache | None" = None, device: Any = "cpu",
                    on_stage: Callable[[str], None] | None = None) -> Scene:
    """Run the vision pass of `model` over `source` and return the `Scene`.

    Args:
        model: a `VidLLM` (eval mode, on `device`) or any object answering the protocol of the module docstring.
        source: a `FrameSource` or a path (`open_frame_source`: video file, image folder, ScanNet scene folder).
        num_frames: frames sampled uniformly (default: the model's `input.num_frames`).
        tokens: also build the pooled 3D tokens of the language tasks (`model.encode_scene`).
        cache: a `SceneCache` for tokens=True scenes; a hit skips decoding and the network. None: no cache.
        on_stage: called with "reading", "preprocessing", "network", "postprocessing" (progress displays).

    Raises:
        VideoError / DataError for unreadable input; CheckpointError when the network output is not finite.
    """
    import torch

    from vidllm_core.data.preprocess import preprocess_with_info
    from vidllm_core.pipelines import scene as scene_cache

    stage = on_stage or (lambda name: None)
    src = source if isinstance(source, FrameSource) else open_frame_source(source)
    settings = preprocess_settings(model)
    count = int(num_frames or settings.num_frames)
    timings: dict[str, float] = {}
    key = None
    if cache is not None and tokens:
        t = time.perf_counter()
        key = scene_cache.cache_key(model, src, count)
        hit = scene_cache.load(cache, key, settings, device)
        timings["cache_lookup_s"] = time.perf_counter() - t
        if hit is not None:
            encoding, rec, frames = hit
            gt = src.ground_truth(frames)
            return Scene(src, frames, rec, encoding, gt, place_in_ground_truth(rec, frames, gt), timings, True, key)
    stage("reading")
    t = time.perf_counter()
    frames = src.read(count)
    timings["read_s"] = time.perf_counter() - t
    stage("preprocessing")
    t = time.perf_counter()
    images, infos = preprocess_with_info(list(frames.images), mode=settings.mode, target_size=settings.image_size,
                                         patch_size=settings.patch_size)
    timings["preprocess_s"] = time.perf_counter() - t
    stage("network")
    t = time.perf_counter()
    with torch.no_grad():
        encoding = model.encode_scene(images.to(device)) if tokens else None
        geometry = encoding.geometry if encoding is not None else model.reconstruct(images.to(device))
    timings["network_s"] = time.perf_counter() - t
    stage("postprocessing")
    t = time.perf_counter()
    check_finite(geometry, None if encoding is None else encoding.tokens, where=str(src.path))
    colors = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    rec = Reconstruction.from_geometry(geometry, colors, infos, settings)
    gt = src.ground_truth(frames)
    scene = Scene(src, frames, rec, encoding, gt, place_in_ground_truth(rec, frames, gt), timings, False, key)
    timings["postprocess_s"] = time.perf_counter() - t
    if cache is not None and key is not None:
        scene_cache.store(cache, key, scene)
    return scene
