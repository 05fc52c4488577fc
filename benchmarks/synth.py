"""Benchmark synthrooms: rendering speed (frames/s) and per-scene generation time; optionally the README figures.

Usage: .venv/bin/python benchmarks/synth.py [--scenes 4] [--frames 48] [--size 224x168] [--figures docs/images]
Prints wall-clock and process-CPU rates: the machine is shared, so CPU time is the fairer number.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vidllm_core.data.synth.camera import intrinsics, sample_trajectory
from vidllm_core.data.synth.dataset import SynthConfig, build_scene, parse_size, scene_name, write_scene
from vidllm_core.data.synth.render import Renderer
from vidllm_core.data.synth.scene import sample_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="224x168")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figures", type=Path, default=None, help="write synth_frames.png and synth_topdown.png here")
    args = ap.parse_args()
    w, h = parse_size(args.size)
    cfg = SynthConfig(scenes=args.scenes, seed=args.seed, frames=args.frames, width=w, height=h)
    print(f"synthrooms benchmark: {args.scenes} scenes x {args.frames} frames at {w}x{h}, numpy single process, "
          f"load average before {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'scene':<14}{'objects':>8}{'boxes':>7}{'render fps (wall)':>19}{'render fps (cpu)':>18}"
          f"{'scene total s (wall)':>22}{'scene total s (cpu)':>21}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.scenes):
            rng = np.random.default_rng([args.seed, i])
            scene = sample_scene(rng, scene_name(i))
            poses = sample_trajectory(rng, scene, args.frames)
            r = Renderer(scene, w, h, intrinsics(w, h))
            r.render(poses[0])  # warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            for p in poses:
                r.render(p)
            tw, tc = time.perf_counter() - t0, time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            res = build_scene(cfg, i)
            write_scene(res, cfg, Path(tmp), "train")
            sw, sc = time.perf_counter() - t0, time.process_time() - c0
            rows.append((args.frames / tw, args.frames / tc, sw, sc))
            print(f"{scene.scene_id:<14}{len(scene.objects):>8}{r.n_boxes:>7}{args.frames / tw:>19.1f}"
                  f"{args.frames / tc:>18.1f}{sw:>22.2f}{sc:>21.2f}")
            if i == 0 and args.figures is not None:
                from vidllm_core.data.synth.figures import frame_grid, top_down

                args.figures.mkdir(parents=True, exist_ok=True)
                frame_grid(res, args.figures / "synth_frames.png")
                top_down(res, args.figures / "synth_topdown.png")
    a = np.array(rows)
    print(f"{'mean':<29}{a[:, 0].mean():>19.1f}{a[:, 1].mean():>18.1f}{a[:, 2].mean():>22.2f}{a[:, 3].mean():>21.2f}")
    print(f"load average after {os.getloadavg()[0]:.2f}; 'scene total' = layout + camera + render + annotations + "
          f"writing frames, mesh, scene.json and video.mp4")


if __name__ == "__main__":
    main()
