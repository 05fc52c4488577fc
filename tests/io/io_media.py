"""Helpers for the I/O tests: tiny generated videos (160x120, 24 frames) written with imageio-ffmpeg or PyAV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

WIDTH, HEIGHT, NUM_FRAMES, FPS = 160, 120, 24, 12


def make_frames(num_frames: int = NUM_FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A horizontal red ramp, a green level that grows with time and a white square moving right."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[..., 0] = np.linspace(0, 255, width, dtype=np.float64).round().astype(np.uint8)[None, None, :]
    for i in range(num_frames):
        frames[i, ..., 1] = 10 * i
        frames[i, 24:56, 8 + 4 * i:40 + 4 * i] = 255
    return frames


def write_mp4_imageio(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    import imageio_ffmpeg

    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=8, output_params=["-loglevel", "error"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def write_mp4_pyav(path: Path, frames: np.ndarray, fps: int = FPS, faststart: bool = False) -> None:
    import av

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


BROKEN = ["missing", "empty", "truncated", "truncated_faststart", "random", "text"]


def listing(folder: Path) -> list[str]:
    """Every entry under `folder`, hidden temporaries included."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, ds, fs in os.walk(folder) for f in fs + ds)
