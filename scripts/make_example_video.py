"""Write a small synthetic example video: a camera slowly orbiting a textured box on a checkered floor.

Usage: python scripts/make_example_video.py OUT.mp4 [--frames 48] [--width 320] [--height 240] [--fps 12]
Pure numpy ray casting (no renderer needed), H.264 via PyAV; deterministic for given arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def render(width: int, height: int, t: float) -> np.ndarray:
    """Ray-cast a floor plane (y = 1) and an axis-aligned box; the camera orbits the box at radius 3 m."""
    angle = 0.6 * t
    centre = np.array([3.0 * np.sin(angle), -0.8, -3.0 * np.cos(angle)])  # 1.8 m above the floor
    forward = np.array([0.0, 0.4, 0.0]) - centre  # look at the box centre
    forward /= np.linalg.norm(forward)
    right = np.cross([0.0, 1.0, 0.0], forward)  # OpenCV-like: y down, so world "up" is -y
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    f = 0.9 * width
    u, v = np.meshgrid(np.arange(width) - width / 2 + 0.5, np.arange(height) - height / 2 + 0.5)
    dirs = forward[None, None] * f + right[None, None] * u[..., None] + down[None, None] * v[..., None]
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)

    image = np.empty((height, width, 3), dtype=np.float64)
    image[:] = np.array([0.75, 0.82, 0.95]) - 0.3 * np.clip(-dirs[..., 1:2], 0, 1)  # sky gradient
    depth = np.full((height, width), np.inf)

    with np.errstate(divide="ignore", invalid="ignore"):  # floor at y = +1 (below the camera)
        t_floor = (1.0 - centre[1]) / dirs[..., 1]
    hit = (t_floor > 0) & np.isfinite(t_floor)
    p = centre + dirs * np.where(hit, t_floor, 0)[..., None]
    checker = (np.floor(p[..., 0] * 2) + np.floor(p[..., 2] * 2)) % 2
    floor_rgb = np.where(checker[..., None] > 0, [0.85, 0.8, 0.7], [0.35, 0.3, 0.28])
    image = np.where(hit[..., None], floor_rgb, image)
    depth = np.where(hit, t_floor, depth)

    lo, hi = np.array([-0.5, -0.2, -0.5]), np.array([0.5, 1.0, 0.5])  # slab test for the box
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (lo - centre) / dirs, (hi - centre) / dirs
    t_near = np.minimum(t0, t1).max(-1)
    t_far = np.maximum(t0, t1).min(-1)
    box = (t_near < t_far) & (t_near > 0) & (t_near < depth)
    q = centre + dirs * np.where(box, t_near, 0)[..., None]
    stripes = 0.5 + 0.5 * np.sin(8 * (q[..., 0] + q[..., 2]) + 6 * q[..., 1])
    box_rgb = np.stack([0.8 * stripes + 0.2, 0.3 + 0.2 * stripes, 0.25 * np.ones_like(stripes)], -1)
    image = np.where(box[..., None], box_rgb, image)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=12)
    args = parser.parse_args(argv)
    if args.width % 2 or args.height % 2 or args.frames < 1:
        print("error: width and height must be even and frames >= 1", file=sys.stderr)
        return 2
    import av

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/ is not a package: reuse atomic_path
    from vidllm_core.io import atomic_path

    with atomic_path(args.output) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=args.fps, options={"crf": "18"})
            stream.width, stream.height, stream.pix_fmt = args.width, args.height, "yuv420p"
            for i in range(args.frames):
                frame = av.VideoFrame.from_ndarray(render(args.width, args.height, i / args.fps), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    print(f"wrote {args.frames} frames ({args.width}x{args.height}, {args.fps} fps) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
