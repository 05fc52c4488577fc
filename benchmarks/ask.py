"""Benchmark `vidllm ask` latency (paper Table 5: joint 1.6 s vs concatenation 2.7 s): first question on a video,
a cached follow-up, and the concatenation pipeline (reconstruction model + a separate vision encoder of the same size
over the same frames + the same LLM), all in one run at the demo preset (random weights: timing only).

Usage: .venv/bin/python benchmarks/ask.py [--preset demo] [--repeats 3] [--threads 1] [--max-new-tokens 8]
Each number is the median of `--repeats` runs; every path includes reading + hashing the video. The machine is
shared, so ratios (measured in the same run) are the numbers to compare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
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


def _median_time(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


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
    from vidllm_core.data.video import read_frames
    from vidllm_core.language import prompts as P
    from vidllm_core.language.cache import SceneCache, file_sha256
    from vidllm_core.language.pooling import voxel_pool
    from vidllm_core.models.build import build_model
    from vidllm_core.models.encoder import DinoEncoder
    from vidllm_core.models.patch3d import Patch3DEmbedding, patch_centroids
    from vidllm_core.pipelines.language import ask
    from vidllm_core.pipelines.scene import encode_video

    hf_logging.set_verbosity_error()
    config = VidLLMConfig.from_name(args.preset)
    from vidllm_core.models.vidllm import VidLLM

    model_dir = Path(tempfile.mkdtemp(prefix="vidllm-bench-"))
    build_model(config, seed=0)[0].save_pretrained(model_dir)
    model = VidLLM.from_pretrained(model_dir)  # as the CLI loads it (cache fingerprint = config + weights stat)
    enc_cfg, lang = config.encoder, config.language
    # the concatenation pipeline's own vision encoder (same size as the shared one) + its 3D-token MLP
    second = DinoEncoder(img_size=enc_cfg.img_size, patch_size=enc_cfg.patch_size, embed_dim=enc_cfg.embed_dim,
                         depth=enc_cfg.depth, num_heads=enc_cfg.num_heads, mlp_ratio=enc_cfg.mlp_ratio,
                         num_register_tokens=enc_cfg.num_register_tokens).eval()
    patch3d = Patch3DEmbedding(enc_cfg.embed_dim, config.patch3d.hidden_dim).eval()
    question = "How many chairs are in the room?"

    with tempfile.TemporaryDirectory() as tmp:
        video = _video(Path(tmp) / "room.mp4")
        n = config.input.num_frames

        def joint_first() -> None:
            cache = SceneCache(Path(tempfile.mkdtemp(dir=tmp)))  # empty cache: the vision pass runs
            scene = encode_video(model, video, None, cache)
            ask(model, scene.encoding, [question], max_new_tokens=args.max_new_tokens)

        warm = SceneCache(Path(tmp) / "warm")
        encode_video(model, video, None, warm)

        def joint_cached() -> None:
            scene = encode_video(model, video, None, warm)
            assert scene.cached
            ask(model, scene.encoding, ["What color is the sofa?"], max_new_tokens=args.max_new_tokens)

        @torch.no_grad()
        def concatenation() -> None:
            file_sha256(video)  # same I/O as the joint path
            clip = read_frames(video, n)
            images = preprocess_images(list(clip.images), mode=config.input.mode, target_size=config.input.image_size,
                                       patch_size=enc_cfg.patch_size)
            rec = model.reconstruct(images)  # the reconstruction model (its own encoder inside)
            x = (images - model.image_mean) / model.image_std
            feats = second(x)["x_norm_patchtokens"]  # the separate vision encoder over the same frames
            xyz = patch_centroids(rec["world_points"], enc_cfg.patch_size).reshape(feats.shape[0], -1, 3)
            tokens = patch3d(feats, xyz).reshape(1, -1, feats.shape[-1])
            pooled = voxel_pool(tokens, xyz.reshape(1, -1, 3), voxel_size=lang.voxel_size, budget=lang.token_budget,
                                reduction=lang.pool_reduction)
            model.language.generate(pooled.tokens, pooled.xyz, pooled.mask, [P.scanqa_prompt(question)],
                                    max_new_tokens=args.max_new_tokens)

        concatenation()  # warm-up (allocator, first-call overheads) for every path
        joint_first()
        t_first = _median_time(joint_first, args.repeats)
        t_cached = _median_time(joint_cached, args.repeats)
        t_concat = _median_time(concatenation, args.repeats)
    import shutil

    shutil.rmtree(model_dir, ignore_errors=True)

    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"preset {args.preset}: {n} frames at {config.input.image_size} px, {params:.1f} M parameters, "
          f"token budget {lang.token_budget}, {args.max_new_tokens} new tokens, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print("| path | latency | ratio |")
    print("|---|---|---|")
    print(f"| joint, first question (vision pass + LLM) | {t_first:.2f} s | 1.00 |")
    print(f"| joint, cached follow-up (cache read + LLM) | {t_cached:.2f} s | {t_cached / t_first:.3f} "
          f"(first / cached = {t_first / t_cached:.1f}x) |")
    print(f"| concatenation (reconstruction + separate encoder + LLM) | {t_concat:.2f} s | "
          f"joint / concatenation = {t_first / t_concat:.2f} |")


if __name__ == "__main__":
    main()
