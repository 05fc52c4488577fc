"""Long video: time and peak RSS of `vidllm reconstruct` (demo model) versus frames, chunked and unchunked, and the
accuracy of a chunked reconstruction against the unchunked one on a synthrooms scene with ground truth.

Usage: .venv/bin/python benchmarks/long_video.py [--frames 8,32,128,256,512,1024] [--chunk-frames 64] [--overlap 4]
           [--unchunked-max 256] [--accuracy-scenes 2] [--accuracy-frames 24] [--accuracy-chunk 12] [--json]

One synthrooms scene of max(--frames) frames (224x168, seed 7) is generated in a temporary folder. Every
(frames, mode) runs `reconstruct_to_outputs` (read, vision pass, PLY written) in a FRESH subprocess; peak RSS is the
worker's `ru_maxrss` (the whole process: Python, torch, model, frames, outputs: what `--max-memory-gb` bounds).
Unchunked runs above --unchunked-max frames are skipped and reported with the estimated memory of the linear model
in `vidllm_core.pipelines.long_video` (their time also grows quadratically: global attention over all frames).

Accuracy (one worker): --accuracy-scenes synthrooms scenes like the demo model's training data (48 frames, 224x168,
seed 11, posed-images layout), --accuracy-frames frames each, unchunked vs chunked (--accuracy-chunk frames,
--overlap, sim3 and se3), scores averaged over the scenes. Against the GT: ATE = RMSE of the camera centres after the
best Sim(3) (Umeyama) onto the GT centres, with that fit's scale (1 = metric scale right); RRA@15 / RTA@15 / AUC@30
(VGGT convention); depth AbsRel of every frame against the GT depth (metric, no per-frame alignment); Acc / Comp /
F-score@10cm of the confident points mapped by the same Sim(3) against the GT depth maps' points.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import load_average, machine_info, peak_rss_mb, run_worker


def _model():
    from vidllm_core.assets import default_model_dir
    from vidllm_core.models.vidllm import VidLLM

    return VidLLM.from_pretrained(default_model_dir(), language=False).eval()


def worker_speed(video: str, frames: int, chunk: int, overlap: int) -> dict[str, Any]:
    """One run of the reconstruct pipeline; chunk 0 = one forward pass (a video shorter than a chunk: one chunk)."""
    from vidllm_core.data.frames import open_frame_source
    from vidllm_core.pipelines.chunked_pass import ChunkOptions
    from vidllm_core.pipelines.outputs import OutputRequest
    from vidllm_core.pipelines.reconstruct_video import ReconstructOptions, reconstruct_to_outputs

    t = time.perf_counter()
    model = _model()
    with tempfile.TemporaryDirectory() as out:
        options = ReconstructOptions(frames, ChunkOptions(min(chunk, frames), overlap) if chunk else None)
        summary = reconstruct_to_outputs(model, open_frame_source(video), options, OutputRequest(Path(out) / "r.ply"))
    return {"frames": frames, "chunk": chunk, "chunks": (summary["chunks"] or {}).get("count", 1),
            "wall_s": round(time.perf_counter() - t, 2), "network_s": summary["timings"]["network_s"],
            "peak_rss_mb": round(peak_rss_mb(), 1), "points": summary["points"]}


def _scores(scene: Any) -> dict[str, float]:
    """Pose, depth and point errors of a vision-pass `Scene` against its ground truth (module docstring)."""
    import numpy as np

    from vidllm_core.metrics.pose import pose_metrics
    from vidllm_core.metrics.reconstruction import reconstruction_metrics
    from vidllm_core.pipelines.long_video import umeyama

    rec, gt = scene.reconstruction, scene.ground_truth
    pred_c2w, gt_c2w = rec.camera_to_world(), gt.poses
    sim = umeyama(pred_c2w[:, :3, 3], gt_c2w[:, :3, 3])
    ate = float(np.sqrt(np.mean(np.sum((sim.apply(pred_c2w[:, :3, 3]) - gt_c2w[:, :3, 3]) ** 2, axis=1))))
    poses = pose_metrics(np.linalg.inv(pred_c2w), np.linalg.inv(gt_c2w))
    absrel, gt_points = [], []
    K = gt.intrinsic_depth
    for i in range(rec.num_frames):
        depth = gt.depth(i)
        h, w = depth.shape
        pred = rec.depth_at(i, h, w, target_intrinsic=K, source_intrinsic=gt.intrinsic_color)
        ok = depth > 0
        absrel.append(float(np.mean(np.abs(pred[ok] - depth[ok]) / depth[ok])))
        v, u = np.nonzero(ok[::4, ::4])
        z = depth[::4, ::4][v, u]
        cam = np.stack([(4 * u - K[0, 2]) / K[0, 0] * z, (4 * v - K[1, 2]) / K[1, 1] * z, z], 1)
        gt_points.append(cam @ gt_c2w[i, :3, :3].T + gt_c2w[i, :3, 3])
    cloud = rec.point_cloud()
    points = reconstruction_metrics(sim.apply(cloud.points.astype(np.float64)), np.concatenate(gt_points),
                                    threshold=0.10)
    return {"ATE_m": round(ate, 4), "sim3_scale": round(sim.scale, 4), "RRA@15": round(poses["RRA@15"], 4),
            "RTA@15": round(poses["RTA@15"], 4), "AUC@30": round(poses["AUC@30"], 4),
            "depth_AbsRel": round(float(np.mean(absrel)), 4), "Acc_m": round(points["Acc"], 4),
            "Comp_m": round(points["Comp"], 4), "F@10cm": round(points["F-score"], 4)}


def worker_accuracy(posed_images: str, frames: int, chunk: int, overlap: int) -> dict[str, Any]:
    """Scores of every scene folder under `posed_images`, unchunked and chunked, averaged over the scenes."""
    import numpy as np

    from vidllm_core.pipelines.chunked_pass import ChunkOptions, run_chunked_vision_pass
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    model = _model()
    runs: dict[str, list[dict[str, float]]] = {}
    scenes = sorted(Path(posed_images).iterdir())
    for scene_dir in scenes:
        runs.setdefault("unchunked", []).append(_scores(run_vision_pass(model, scene_dir, num_frames=frames)))
        for align in ("sim3", "se3"):
            scene, _ = run_chunked_vision_pass(model, scene_dir, num_frames=frames,
                                               options=ChunkOptions(chunk, overlap, None, align))
            runs.setdefault(f"chunked {chunk}/{overlap} {align}", []).append(_scores(scene))
    rows = {name: {k: round(float(np.mean([r[k] for r in rs])), 4) for k in rs[0]} for name, rs in runs.items()}
    return {"frames": frames, "scenes": len(scenes), "rows": rows}


def estimated_unchunked_mb(frames: int) -> float:
    """The linear memory model of `long_video` for one pass over `frames` demo frames (112x84) plus a ~0.4 GB base."""
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.pipelines.long_video import MAPS_BYTES_PER_PIXEL, forward_bytes_per_frame

    config = VidLLMConfig.from_name("demo")
    per_frame = forward_bytes_per_frame(config, 84, 112) + MAPS_BYTES_PER_PIXEL * 84 * 112
    return round((400 * 2 ** 20 + frames * per_frame) / 2 ** 20, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="8,32,128,256,512,1024")
    parser.add_argument("--chunk-frames", type=int, default=64)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--unchunked-max", type=int, default=256)
    parser.add_argument("--accuracy-scenes", type=int, default=2)
    parser.add_argument("--accuracy-frames", type=int, default=24)
    parser.add_argument("--accuracy-chunk", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        fn = worker_speed if kind == "speed" else worker_accuracy
        print(json.dumps(fn(rest[0], *map(int, rest[1:]))))
        return

    from vidllm_core.data.synth import SynthConfig, generate_dataset

    frame_counts = [int(x) for x in args.frames.split(",")]
    t0 = time.perf_counter()
    load_before = load_average()
    env = {"OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp) / "synth", SynthConfig(scenes=1, seed=7, frames=max(frame_counts), width=224,
                                                          height=168))
        video = str(next((Path(tmp) / "synth" / "scenes").glob("*/video.mp4")))
        generate_dataset(Path(tmp) / "accuracy", SynthConfig(scenes=args.accuracy_scenes, seed=11, video=False))
        rows = []
        for n in frame_counts:
            rows.append(run_worker(__file__, ["--worker", "speed", video, str(n), str(args.chunk_frames),
                                              str(args.overlap)], env))
            if n <= args.unchunked_max:
                rows.append(run_worker(__file__, ["--worker", "speed", video, str(n), "0", "0"], env))
            else:
                rows.append({"frames": n, "chunk": 0, "skipped": True, "estimated_peak_rss_mb":
                             estimated_unchunked_mb(n)})
        accuracy = run_worker(__file__, ["--worker", "accuracy", str(Path(tmp) / "accuracy" / "posed_images"),
                                         str(args.accuracy_frames),
                                         str(args.accuracy_chunk), str(args.overlap)], env)
    result = {"machine": machine_info(), "load_before": load_before, "load_after": load_average(),
              "total_s": round(time.perf_counter() - t0, 1), "speed": rows, "accuracy": accuracy}
    if args.json:
        print(json.dumps(result))
        return
    print("| frames | mode | chunks | wall s | network s | peak RSS MB |\n|---|---|---|---|---|---|")
    for r in rows:
        mode = f"chunked {args.chunk_frames}/{args.overlap}" if r["chunk"] else "unchunked"
        if r.get("skipped"):
            print(f"| {r['frames']} | {mode} | - | skipped | skipped | ~{r['estimated_peak_rss_mb']:.0f} (estimate) |")
        else:
            print(f"| {r['frames']} | {mode} | {r['chunks']} | {r['wall_s']} | {r['network_s']} | "
                  f"{r['peak_rss_mb']} |")
    keys = list(next(iter(accuracy["rows"].values())))
    print(f"\naccuracy, {accuracy['frames']} frames, mean of {accuracy['scenes']} scenes\n| run | " + " | ".join(keys) + " |\n" + "|---" * (len(keys) + 1) + "|")
    for name, scores in accuracy["rows"].items():
        print(f"| {name} | " + " | ".join(str(scores[k]) for k in keys) + " |")
    print(f"\ntotal {result['total_s']} s, load {load_before} -> {result['load_after']}", file=sys.stderr)


if __name__ == "__main__":
    main()
