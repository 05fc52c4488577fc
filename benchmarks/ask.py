"""Benchmark `vidllm ask` latency (paper Table 5: joint 1.6 s vs concatenation 2.7 s): first question on a video,
a cached follow-up, and the two concatenation pipelines of Table 5, all in one run (random weights: timing only):

* concatenation (VGGT + LLaVA-3D): a reconstruction model (encoder + aggregator + heads, no adapter, no metric
  depth) + the 3D LLM's own vision encoder over the same frames + 3D patches, voxel pooling and the same LLM;
* concatenation-dagger (VGGT + LLaVA-3D with metric-scale alignment): the above + a standalone metric-depth model
  (its own encoder + the same decoder) whose depth sets the scale, as the joint model's does.

Every component has the joint model's size; the stages hand frames and geometry over in memory (a pipeline glued
from separate tools would also decode the video and write depth maps once per tool, so this favours it).
`benchmarks/flops.py` counts the same pipelines' FLOPs, up to the paper preset.

Usage: .venv/bin/python benchmarks/ask.py [--preset demo] [--repeats 3] [--threads 1] [--max-new-tokens 8]
Each number is the median of `--repeats` interleaved rounds (every path once per round); every path includes reading
+ hashing the video. The machine is shared, so per-round ratios (median, min-max) are the numbers to compare.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def _video(path: Path, frames: int = 48, w: int = 224, h: int = 168) -> Path:
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=12, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=8, output_params=["-loglevel", "error"])
    writer.send(None)
    for i in range(frames):
        writer.send(np.ascontiguousarray(np.roll(base, 2 * i, axis=1)))
    writer.close()
    return path


def _interleaved_times(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each path, round-robin (A, B, C, D, A, B, ...): load changes on a shared machine hit every path
    alike, so per-round ratios are comparable (timing each path's repeats back to back swung them 0.63-1.06)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def _ratio(a: list[float], b: list[float]) -> str:
    """Median of the per-round ratios a/b with their range."""
    r = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable numbers on a shared machine)")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    from vidllm_core.config import VidLLMConfig
    from vidllm_core.data.preprocess import preprocess_images
    from vidllm_core.data.frames import open_frame_source
    from vidllm_core.language import prompts as P
    from vidllm_core.language.cache import SceneCache, file_sha256
    from vidllm_core.language.pooling import voxel_pool
    from vidllm_core.models.build import build_model
    from vidllm_core.models.patch3d import patch_centroids
    from vidllm_core.models.reconstruction import DEPTH_AND_CAMERAS
    from vidllm_core.pipelines.language import ask
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    hf_logging.set_verbosity_error()
    config = VidLLMConfig.from_name(args.preset)
    from vidllm_core.models.vidllm import VidLLM

    model_dir = Path(tempfile.mkdtemp(prefix="vidllm-bench-"))
    build_model(config, seed=0)[0].save_pretrained(model_dir)
    model = VidLLM.from_pretrained(model_dir)  # as the CLI loads it (cache fingerprint = config + weights stat)
    enc_cfg, lang = config.encoder, config.language

    # VGGT-like reconstruction model: same encoder / aggregator / heads, no Cross-Task Adapter, no metric depth
    vggt = VidLLM(config.replace(adapter=replace(config.adapter, variant="none"), metric_depth=None,
                                 language=None)).eval()
    # the standalone metric-depth model (its own encoder + decoder) and the 3D LLM's own encoder + 3D-token MLP:
    # copies of the joint model's modules, so each has its counterpart's size
    md_encoder, md_decoder = copy.deepcopy(model.encoder), copy.deepcopy(model.metric_depth)
    second, patch3d = copy.deepcopy(model.encoder), copy.deepcopy(model.patch3d)
    question = "How many chairs are in the room?"

    with tempfile.TemporaryDirectory() as tmp:
        video = _video(Path(tmp) / "room.mp4")
        n = config.input.num_frames

        def joint_first() -> None:
            cache = SceneCache(Path(tempfile.mkdtemp(dir=tmp)))  # empty cache: the vision pass runs
            scene = run_vision_pass(model, video, tokens=True, cache=cache)
            ask(model, scene.encoding, [question], max_new_tokens=args.max_new_tokens)

        warm = SceneCache(Path(tmp) / "warm")
        run_vision_pass(model, video, tokens=True, cache=warm)

        def joint_cached() -> None:
            scene = run_vision_pass(model, video, tokens=True, cache=warm)
            assert scene.cached
            ask(model, scene.encoding, ["What color is the sofa?"], max_new_tokens=args.max_new_tokens)

        @torch.no_grad()
        def concatenation(metric: bool) -> None:
            file_sha256(video)  # same I/O as the joint path
            clip = open_frame_source(video).read(n)
            images = preprocess_images(list(clip.images), mode=config.input.mode, target_size=config.input.image_size,
                                       patch_size=enc_cfg.patch_size)
            out = vggt(images.unsqueeze(0), outputs=DEPTH_AND_CAMERAS)  # 1. reconstruction: depth + cameras
            x = (images - model.image_mean) / model.image_std
            if metric:  # 2. the metric-depth model over the same frames; its depth scales the reconstruction
                grid = (images.shape[-2] // enc_cfg.patch_size, images.shape[-1] // enc_cfg.patch_size)
                inter = md_encoder(x, intermediate_layers=list(enc_cfg.intermediate_layers))["intermediates"]
                out["metric_depth"] = md_decoder(inter, grid, images.shape[-2:]).reshape(1, *images.shape[:1],
                                                                                         *images.shape[-2:])
            geometry = vggt.geometry(out)
            feats = second(x)["x_norm_patchtokens"]  # 3. the 3D LLM: its own encoder, 3D patches, pooling, LLM
            xyz = patch_centroids(geometry.world_points, enc_cfg.patch_size).reshape(feats.shape[0], -1, 3)
            tokens = patch3d(feats, xyz).reshape(1, -1, feats.shape[-1])
            pooled = voxel_pool(tokens, xyz.reshape(1, -1, 3), voxel_size=lang.voxel_size, budget=lang.token_budget,
                                reduction=lang.pool_reduction)
            model.language.generate(pooled.tokens, pooled.xyz, pooled.mask, [P.scanqa_prompt(question)],
                                    max_new_tokens=args.max_new_tokens)

        concatenation(True)  # warm-up (allocator, first-call overheads) for every path
        joint_first()
        runs = _interleaved_times({"first": joint_first, "cached": joint_cached,
                                   "concat": lambda: concatenation(False), "dagger": lambda: concatenation(True)},
                                  args.repeats)
        t_first, t_cached, t_concat, t_dagger = (statistics.median(runs[k]) for k in ("first", "cached", "concat",
                                                                                      "dagger"))
    import shutil

    shutil.rmtree(model_dir, ignore_errors=True)

    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"preset {args.preset}: {n} frames at {config.input.image_size} px, {params:.1f} M parameters, "
          f"token budget {lang.token_budget}, {args.max_new_tokens} new tokens, {args.threads} thread(s), "
          f"median of {args.repeats} interleaved rounds (ratio: median of per-round ratios, min-max)")
    print("| path | latency | ratio |")
    print("|---|---|---|")
    print(f"| joint, first question (vision pass + LLM) | {t_first:.2f} s | 1.00 |")
    print(f"| joint, cached follow-up (cache read + LLM) | {t_cached:.2f} s | "
          f"first / cached = {_ratio(runs['first'], runs['cached'])} |")
    print(f"| concatenation (reconstruction model + 3D LLM with its own encoder) | {t_concat:.2f} s | "
          f"joint / concatenation = {_ratio(runs['first'], runs['concat'])} |")
    print(f"| concatenation-dagger (+ standalone metric-depth model, scale alignment) | {t_dagger:.2f} s | "
          f"joint / concatenation-dagger = {_ratio(runs['first'], runs['dagger'])} |")


if __name__ == "__main__":
    main()
