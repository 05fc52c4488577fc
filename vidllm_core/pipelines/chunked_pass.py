"""The vision pass over a long video in bounded memory: `run_vision_pass` once per overlapping chunk, chunks aligned
into one scene (`long_video`). Not in the paper (issue 13).

With tokens (the `ask` scene encoding), each chunk's voxel-pooled 3D tokens are moved into the global world by the
chunk's similarity and the union is voxel-pooled once more to the language token budget (Sec. 3.3 pooling applied
twice instead of once over all patches; docs/DESIGN.md "Long video").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vidllm_core.data.frames import FrameSource, open_frame_source
from vidllm_core.data.video import Frames
from vidllm_core.errors import DataError
from vidllm_core.pipelines.long_video import ChunkInfo, chunk_frames_for_budget, plan_chunks, reconstruct_in_chunks
from vidllm_core.pipelines.reconstruct import preprocess_settings
from vidllm_core.pipelines.vision_pass import Scene, place_in_ground_truth, run_vision_pass

ALIGNMENTS = ("sim3", "se3")


@dataclass(frozen=True)
class ChunkOptions:
    """chunk_frames: frames per forward pass (None: from the budget); overlap: frames shared by consecutive chunks;
    max_memory_gb: peak-RSS budget the chunk size must fit (None: no budget); align: "sim3" or "se3"."""

    chunk_frames: int | None = None
    overlap: int = 4
    max_memory_gb: float | None = None
    align: str = "sim3"

    def __post_init__(self) -> None:
        if self.align not in ALIGNMENTS:
            raise DataError(f"chunk alignment must be one of {', '.join(ALIGNMENTS)}, got '{self.align}'")
        if self.max_memory_gb is not None and not (math.isfinite(self.max_memory_gb) and self.max_memory_gb > 0):
            raise DataError(f"--max-memory-gb must be a positive number, got {self.max_memory_gb}")


class FrameRange(FrameSource):
    """Frames [start, stop) of frames already read from `parent`: one chunk, as a source `run_vision_pass` reads."""

    kind = "chunk"

    def __init__(self, parent: FrameSource, frames: Frames, start: int, stop: int) -> None:
        super().__init__(parent.path)
        self.parent, self.frames, self.start, self.stop = parent, frames, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, num_frames: int) -> Frames:
        if num_frames != len(self):
            raise ValueError(f"a chunk of {len(self)} frames was asked for {num_frames}")
        f, sl = self.frames, slice(self.start, self.stop)
        return replace(f, images=f.images[sl], indices=f.indices[sl],
                       timestamps=None if f.timestamps is None else f.timestamps[sl], ids=tuple(f.ids[sl]))

    def fingerprint(self) -> str:
        return f"{self.parent.fingerprint()}:{self.start}-{self.stop}"

    def ground_truth(self, frames: Frames):  # noqa: ANN201 - the parent's GroundTruth
        return self.parent.ground_truth(frames)


def network_size(model: Any, frame: np.ndarray) -> tuple[int, int]:
    """(height, width) the model's preprocessing gives a source frame."""
    from vidllm_core.data.preprocess import preprocess_with_info

    settings = preprocess_settings(model)
    images, _ = preprocess_with_info([frame], mode=settings.mode, target_size=settings.image_size,
                                     patch_size=settings.patch_size)
    return int(images.shape[-2]), int(images.shape[-1])


def resolve_chunk_frames(options: ChunkOptions, model: Any, frames: Frames) -> int:
    """Frames per forward pass: `chunk_frames` (checked against the video), lowered to what the budget allows."""
    count = len(frames.images)
    if options.chunk_frames is not None:
        plan_chunks(count, options.chunk_frames, options.overlap)  # one-line errors for bad sizes
    if options.max_memory_gb is None:
        return options.chunk_frames or count
    height, width = network_size(model, frames.images[0])
    fits = chunk_frames_for_budget(options.max_memory_gb, num_frames=count, height=height, width=width,
                                   model_config=getattr(model, "config", None), overlap=options.overlap,
                                   source_frame_bytes=0)  # the frames are already read: in the current RSS
    return min(fits, options.chunk_frames or count)


def run_chunked_vision_pass(model: Any, source: FrameSource | str, *, num_frames: int | None, options: ChunkOptions,
                            tokens: bool = False, device: Any = "cpu",
                            on_chunk: Callable[[int, int], None] | None = None) -> tuple[Scene, list[ChunkInfo]]:
    """The `Scene` of `source` built chunk by chunk (one chunk when everything fits); also the chunks' alignment."""
    src = source if isinstance(source, FrameSource) else open_frame_source(source)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    frames = src.read(int(num_frames or preprocess_settings(model).num_frames))
    timings["read_s"] = time.perf_counter() - t
    chunk = resolve_chunk_frames(options, model, frames)
    encodings: list[Any] = []

    def run_chunk(start: int, stop: int):
        scene = run_vision_pass(model, FrameRange(src, frames, start, stop), num_frames=stop - start, tokens=tokens,
                                device=device)
        for key, value in scene.timings.items():
            timings[key] = timings.get(key, 0.0) + value
        if tokens:  # only the pooled tokens: the chunk's per-pixel geometry lives on in its reconstruction alone
            encodings.append((scene.encoding.tokens, scene.encoding.xyz))
        return scene.reconstruction

    rec, chunks = reconstruct_in_chunks(run_chunk, len(frames.images), chunk, options.overlap,
                                        with_scale=options.align == "sim3", on_chunk=on_chunk)
    encoding = merge_encodings(model, encodings, chunks, rec, device) if tokens else None
    gt = src.ground_truth(frames)
    return Scene(src, frames, rec, encoding, gt, place_in_ground_truth(rec, frames, gt), timings), chunks


def merge_encodings(model: Any, encodings: list[Any], chunks: list[ChunkInfo], rec: Any, device: Any) -> Any:
    """One `SceneEncoding` from every chunk's (pooled tokens, positions): positions moved into the global world,
    voxel-pooled again to the budget; its geometry is the merged reconstruction `rec`."""
    import torch

    from vidllm_core.language.pooling import pool_scene_tokens
    from vidllm_core.models.vidllm import SceneEncoding, SceneGeometry

    xyz = [torch.as_tensor(c.transform.apply(pos.double().cpu().numpy()), dtype=pos.dtype, device=pos.device)
           for (_, pos), c in zip(encodings, chunks)]
    pooled = pool_scene_tokens(torch.cat([tok for tok, _ in encodings])[None], torch.cat(xyz)[None],
                               model.config.language)
    keep = pooled.mask[0]
    geometry = SceneGeometry(*(torch.as_tensor(a, device=device) for a in (
        rec.depth, rec.depth_conf, rec.extrinsic, rec.intrinsic, rec.world_points)), rec.scale, rec.metric)
    return SceneEncoding(pooled.tokens[0][keep], pooled.xyz[0][keep], keep[keep], geometry)
