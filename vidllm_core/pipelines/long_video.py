"""Long video in bounded memory: overlapping chunks, each reconstructed on its own, chained into one metric scene by
a similarity fitted on the shared frames' point maps. Not in the paper (issue 13; VGGT-Long-style).

Each chunk is a plain forward pass whose world is its first frame (VGGT's reference frame). Consecutive chunks
share `overlap` frames; chunk k+1 is mapped into chunk k's (already global) world by a Sim(3) (or SE(3)): the scale
is the median per-pixel depth ratio of the shared frames, the rotation and translation the weighted Kabsch /
Umeyama (1991) fit of their per-pixel world points onto chunk k's points of the same pixels (confidence-weighted,
trimmed). Frames seen twice keep chunk k's prediction. No loop closure: errors of the chain add up along the video
(see docs/DESIGN.md "Long video"). Peak memory is that of one chunk plus the merged per-pixel maps, so time and
memory grow linearly with the number of frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from vidllm_core.errors import DataError
from vidllm_core.geometry.unproject import confidence_mask
from vidllm_core.pipelines.reconstruct import Reconstruction

# Peak-memory model of one forward pass, calibrated on the demo preset (84x112 frames, CPU, float32): peak RSS grows
# by ~11.2 MB per frame (8..128 frames measured, benchmarks/long_video.py), i.e. ~1,190 bytes per pixel; the DPT
# decoders dominate, so the per-pixel cost is modelled as proportional to their summed feature widths (64 there).
BYTES_PER_PIXEL_PER_DPT_FEATURE = 18.6
# Merged maps kept per network pixel: colours 3 + depth 4 + confidence 4 + world points 12 bytes.
MAPS_BYTES_PER_PIXEL = 23
# Writing the outputs after the last chunk (no forward pass then): the gathered point cloud (~15 bytes per pixel
# for the default 50 % kept) and trimesh's PLY encoding (~44), measured with tracemalloc on 1,000 x 112x84 frames.
WRITE_BYTES_PER_PIXEL = 64
MIN_CHUNK_FRAMES = 2


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation (maps a chunk's world into the global world)."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (self.scale * (points.reshape(-1, 3) @ self.rotation.T) + self.translation).reshape(points.shape)

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous form."""
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = self.scale * self.rotation, self.translation
        return out


@dataclass(frozen=True)
class ChunkInfo:
    """One chunk: sampled-frame range [start, stop), its map into the global world, and the overlap fit quality
    (median point residual after alignment, relative to the median overlap depth; None for the first chunk)."""

    start: int
    stop: int
    transform: Similarity
    residual: float | None
    matched_points: int


def plan_chunks(num_frames: int, chunk_frames: int, overlap: int) -> list[tuple[int, int]]:
    """Ranges [start, stop) of equal-size chunks covering `num_frames`, consecutive ones sharing >= `overlap` frames
    (the last chunk is moved back to end at the last frame, so it may share more)."""
    if chunk_frames > num_frames:
        raise DataError(f"chunk size {chunk_frames} is larger than the video's {num_frames} sampled frames; use "
                        f"--chunk-frames {num_frames} or less (or no chunking)")
    if chunk_frames < MIN_CHUNK_FRAMES:
        raise DataError(f"chunk size must be at least {MIN_CHUNK_FRAMES} frames, got {chunk_frames}")
    if chunk_frames == num_frames:
        return [(0, num_frames)]
    if not 1 <= overlap < chunk_frames:
        raise DataError(f"overlap must be between 1 and chunk size - 1 ({chunk_frames - 1}), got {overlap}")
    step = chunk_frames - overlap
    starts = list(range(0, num_frames - chunk_frames, step)) + [num_frames - chunk_frames]
    return [(s, s + chunk_frames) for s in starts]


def forward_bytes_per_frame(model_config: Any, height: int, width: int) -> float:
    """Estimated extra peak memory of one more frame in a forward pass (see BYTES_PER_PIXEL_PER_DPT_FEATURE)."""
    features = sum(int(getattr(getattr(model_config, name, None), "features", 0) or 0)
                   for name in ("depth_head", "point_head", "metric_depth"))
    return BYTES_PER_PIXEL_PER_DPT_FEATURE * max(features, 1) * height * width


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; falls back to the peak on other systems)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _page_size()
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


def chunk_frames_for_budget(max_memory_gb: float, *, num_frames: int, height: int, width: int, model_config: Any,
                            overlap: int, source_frame_bytes: int = 0, base_bytes: int | None = None) -> int:
    """Largest chunk size whose estimated peak RSS fits `max_memory_gb`: the process now (`base_bytes`, default its
    RSS), the sampled source frames and the merged maps of all frames, plus one chunk's forward pass (while the
    network runs) or the output writing (after it).

    Returns `num_frames` when the whole video fits; raises DataError (one line) when the outputs or not even a
    chunk of `overlap + 1` (at least 2) frames fit."""
    if not (math.isfinite(max_memory_gb) and max_memory_gb > 0):
        raise DataError(f"memory budget must be a positive number of GB, got {max_memory_gb}")
    budget = max_memory_gb * 1024 ** 3
    base = current_rss_bytes() if base_bytes is None else base_bytes
    pixels = num_frames * height * width
    fixed = base + source_frame_bytes + MAPS_BYTES_PER_PIXEL * pixels
    writing = fixed + WRITE_BYTES_PER_PIXEL * pixels
    if writing > budget:
        raise DataError(f"memory budget {max_memory_gb:g} GB is too small to hold and write the outputs of "
                        f"{num_frames} frames at {width}x{height} (estimated {writing / 1024 ** 3:.2f} GB); raise "
                        "--max-memory-gb or sample fewer frames")
    per_frame = forward_bytes_per_frame(model_config, height, width)
    fits = int((budget - fixed) // per_frame)
    smallest = max(MIN_CHUNK_FRAMES, overlap + 1)
    if fits < smallest:
        need = (fixed + smallest * per_frame) / 1024 ** 3
        raise DataError(f"memory budget {max_memory_gb:g} GB is too small for one chunk of {smallest} frames "
                        f"(estimated {need:.2f} GB for {num_frames} frames at {width}x{height}); raise "
                        "--max-memory-gb or sample fewer frames")
    return min(fits, num_frames)


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> Similarity:
    """Weighted least-squares similarity mapping `source` [N,3] onto `target` [N,3] (Umeyama 1991; rotation from
    scipy's weighted Kabsch `align_vectors`, scale = sum w <R x_c, y_c> / sum w |x_c|^2)."""
    w = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_t = w @ source, w @ target
    xs, yt = source - mu_s, target - mu_t
    rot, _ = Rotation.align_vectors(yt, xs, weights=w)
    R = rot.as_matrix()
    scale = float((w * np.einsum("ij,ij->i", xs @ R.T, yt)).sum() / (w * (xs ** 2).sum(1)).sum()) if with_scale \
        else 1.0
    return Similarity(scale, R, mu_t - scale * R @ mu_s)


def fit_overlap(source: np.ndarray, target: np.ndarray, conf: np.ndarray, with_scale: bool = True,
                rounds: int = 3) -> tuple[Similarity, float, int]:
    """Robust Umeyama on corresponding points: confidence weights, then `rounds` refits without the points whose
    residual exceeds 3x the median. Returns (transform, median residual, points used)."""
    keep = np.ones(len(source), dtype=bool)
    fit = umeyama(source, target, conf, with_scale)
    for _ in range(rounds):
        residual = np.linalg.norm(fit.apply(source) - target, axis=1)
        keep = residual <= 3 * np.median(residual) + 1e-12
        fit = umeyama(source[keep], target[keep], conf[keep], with_scale)
    residual = np.linalg.norm(fit.apply(source[keep]) - target[keep], axis=1)
    return fit, float(np.median(residual)), int(keep.sum())


def transform_reconstruction(rec: Reconstruction, sim: Similarity) -> Reconstruction:
    """The same reconstruction in another world: points mapped, cameras moved, depth and translations scaled."""
    c2w = rec.camera_to_world()
    new_c2w = np.einsum("ij,sjk->sik", sim.matrix(), c2w)
    new_c2w[:, :3, :3] /= sim.scale  # keep the camera rotations orthonormal; the scale goes into depth
    R = np.swapaxes(new_c2w[:, :3, :3], 1, 2)
    extrinsic = np.concatenate([R, -R @ new_c2w[:, :3, 3:]], axis=2).astype(np.float32)
    linear = (sim.scale * sim.rotation).T.astype(np.float32)  # float32 maps: no float64 copy of a long video
    points = rec.world_points.reshape(-1, 3) @ linear + sim.translation.astype(np.float32)
    return replace(rec, depth=(rec.depth * np.float32(sim.scale)).astype(np.float32), extrinsic=extrinsic,
                   world_points=points.reshape(rec.world_points.shape))


def _overlap_points(prev: Reconstruction, nxt: Reconstruction, prev_frames: Sequence[int],
                    next_frames: Sequence[int], max_points: int = 50000) -> tuple[np.ndarray, ...]:
    """Corresponding world points (next chunk, global) of the shared frames' confident valid pixels, their min
    confidence and the depth ratio prev / next of each pixel."""
    src = nxt.world_points[list(next_frames)].reshape(-1, 3).astype(np.float64)
    dst = prev.world_points[list(prev_frames)].reshape(-1, 3).astype(np.float64)
    conf = np.minimum(nxt.depth_conf[list(next_frames)], prev.depth_conf[list(prev_frames)]).reshape(-1)
    valid = (nxt.valid_mask()[list(next_frames)] & prev.valid_mask()[list(prev_frames)]).reshape(-1)
    ok = valid & np.isfinite(src).all(1) & np.isfinite(dst).all(1) & np.isfinite(conf) & (conf > 0)
    idx = np.flatnonzero(ok)
    if len(idx):
        idx = idx[confidence_mask(conf[idx], 50.0)]
    if len(idx) > max_points:
        idx = np.random.default_rng(0).choice(idx, max_points, replace=False)
    ratio = (prev.depth[list(prev_frames)] / nxt.depth[list(next_frames)]).reshape(-1)
    return src[idx], dst[idx], conf[idx], ratio[idx]


class _Merged:
    """Preallocated per-frame maps of all frames, filled chunk by chunk (no concatenation copy at the end)."""

    FIELDS = ("colors", "depth", "depth_conf", "extrinsic", "intrinsic", "world_points")

    def __init__(self, first: Reconstruction, num_frames: int) -> None:
        self.first = first
        self.arrays = {name: np.empty((num_frames,) + getattr(first, name).shape[1:], getattr(first, name).dtype)
                       for name in self.FIELDS}
        self.infos: list[Any] = [None] * num_frames

    def fill(self, rec: Reconstruction, start: int, begin: int, stop: int) -> None:
        """Copy frames [begin, stop) (global indices) of `rec`, whose first frame is global frame `start`."""
        for name, array in self.arrays.items():
            array[begin:stop] = getattr(rec, name)[begin - start:stop - start]
        self.infos[begin:stop] = rec.infos[begin - start:stop - start]

    def result(self) -> Reconstruction:
        return replace(self.first, infos=list(self.infos), **self.arrays)


def reconstruct_in_chunks(run_chunk: Callable[[int, int], Reconstruction], num_frames: int, chunk_frames: int,
                          overlap: int, with_scale: bool = True,
                          on_chunk: Callable[[int, int], None] | None = None) -> tuple[Reconstruction, list[ChunkInfo]]:
    """Reconstruct frames [0, num_frames) chunk by chunk and merge them into the first chunk's world.

    run_chunk(start, stop): the vision pass of sampled frames [start, stop) -> `Reconstruction` (its own world).
    with_scale: Sim(3) (True: the scale is the median per-pixel depth ratio on the overlap, then a rigid fit) or
    SE(3) (False; each chunk keeps its own metric scale). The median depth ratio is used rather than Umeyama's
    least-squares scale, which noise in the new chunk's points biases low (it shrank the scene by ~5 % per chunk
    on the demo model, compounding along the video).
    on_chunk(index, total) is called before each chunk (progress). Only the previous chunk is kept besides the
    preallocated merged maps, so peak memory is one forward pass plus the outputs.
    """
    ranges = plan_chunks(num_frames, chunk_frames, overlap)
    infos: list[ChunkInfo] = []
    merged: _Merged | None = None
    prev: Reconstruction | None = None
    for k, (start, stop) in enumerate(ranges):
        if on_chunk is not None:
            on_chunk(k, len(ranges))
        rec = run_chunk(start, stop)
        if prev is None:
            merged = _Merged(rec, num_frames)
            merged.fill(rec, start, start, stop)
            prev = rec
            infos.append(ChunkInfo(start, stop, Similarity.identity(), None, 0))
            continue
        p_start, p_stop = ranges[k - 1]
        shared = range(start, p_stop)
        src, dst, conf, ratio = _overlap_points(prev, rec, [i - p_start for i in shared],
                                                [i - start for i in shared])
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if len(src) < 3 or not len(ratio):
            raise DataError(f"chunks {k - 1} and {k} share no confident points in their {len(shared)} overlap "
                            "frames; raise --overlap")
        scale = float(np.median(ratio)) if with_scale else 1.0
        rigid, residual, used = fit_overlap(src * scale, dst, conf, with_scale=False)
        sim = Similarity(scale, rigid.rotation, rigid.translation)
        scale_ref = float(np.median(prev.depth[[i - p_start for i in shared]]))
        prev = transform_reconstruction(rec, sim)
        del rec
        merged.fill(prev, start, p_stop, stop)
        infos.append(ChunkInfo(start, stop, sim, residual / max(scale_ref, 1e-9), used))
    assert merged is not None
    return merged.result(), infos
