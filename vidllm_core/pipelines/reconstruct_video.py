"""Video -> metric reconstruction -> files, as `vidllm reconstruct` runs it (issue 2 item 5, issue 13): the vision
pass (chunked for long videos), an optional scale anchor and gravity alignment, then every requested output.
Not in the paper beyond the vision pass itself (Sec. 3.1-3.2)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidllm_core.data.frames import FrameSource
from vidllm_core.pipelines.chunked_pass import ChunkOptions, run_chunked_vision_pass
from vidllm_core.pipelines.gt_report import ground_truth_report
from vidllm_core.pipelines.outputs import OutputRequest, write_outputs
from vidllm_core.pipelines.scale_anchor import ScaleAnchor, apply_anchor, gravity_align
from vidllm_core.pipelines.vision_pass import run_vision_pass


@dataclass(frozen=True)
class ReconstructOptions:
    """num_frames sampled (None: the model's), chunking (None: one forward pass), a scale anchor, gravity alignment,
    device."""

    num_frames: int | None = None
    chunking: ChunkOptions | None = None
    anchor: ScaleAnchor | None = None
    gravity_align: bool = False
    device: str = "cpu"


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def reconstruct_to_outputs(model: Any, source: FrameSource, options: ReconstructOptions, request: OutputRequest,
                           on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run everything and return the JSON summary (what was read, sizes, scale source, chunks, timings, outputs)."""
    stage = on_stage or (lambda name: None)
    t0 = time.perf_counter()
    chunks = None
    if options.chunking is None:
        scene = run_vision_pass(model, source, num_frames=options.num_frames, device=options.device, on_stage=stage)
    else:
        scene, chunks = run_chunked_vision_pass(
            model, source, num_frames=options.num_frames, options=options.chunking, device=options.device,
            on_chunk=lambda k, n: stage(f"network (chunk {k + 1} of {n})"))
    stage("postprocessing")
    rec, scale_source = apply_anchor(scene.reconstruction, options.anchor)
    gravity = None
    if options.gravity_align:
        rec, gravity = gravity_align(rec)
    frames = scene.frames
    src_h, src_w = frames.images.shape[1:3] if len(frames.images) else (None, None)
    chunk_doc = None if chunks is None else {
        "count": len(chunks), "frames": chunks[0].stop - chunks[0].start, "overlap": options.chunking.overlap,
        "align": options.chunking.align, "ranges": [[c.start, c.stop] for c in chunks],
        "scales": [round(c.transform.scale, 6) for c in chunks],
        "overlap_residual": [None if c.residual is None else round(c.residual, 6) for c in chunks]}
    gravity_doc = None if gravity is None else {"method": gravity.method, "floor_inliers": gravity.inliers,
                                                "transform": gravity.transform.tolist()}
    extra = {"source": str(source.path), "source_width": src_w, "source_height": src_h, "fps": frames.fps,
             "preprocess": {"mode": rec.settings.mode, "image_size": rec.settings.image_size},
             "scale_source": scale_source.as_dict(), "gravity_aligned": gravity_doc, "chunks": chunk_doc}
    t = time.perf_counter()
    cloud = write_outputs(rec, request, source_indices=scene.source_frames,
                          timestamps=None if frames.timestamps is None else frames.timestamps.tolist(), extra=extra,
                          gravity_aligned=gravity is not None)
    timings = {**scene.timings, "write_s": time.perf_counter() - t, "total_s": time.perf_counter() - t0}
    return {
        "input": str(source.path), "backend": frames.backend, "frames": rec.num_frames,
        "source_frames": scene.source_frames, "source_resolution": [src_w, src_h],
        "resolution": [rec.width, rec.height], "points": int(len(cloud.points)), "scale": rec.scale,
        "metric": rec.metric, "scale_source": scale_source.as_dict(), "gravity_aligned": gravity_doc,
        "chunks": chunk_doc, "ground_truth": ground_truth_report(scene), "device": options.device,
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "outputs": {k: None if v is None else str(v) for k, v in (
            ("ply", request.ply), ("cameras", request.cameras), ("depth_dir", request.depth_dir),
            ("export_dir", request.export_dir), ("preview", request.preview))},
    }
