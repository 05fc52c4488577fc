"""Fixtures for the I/O tests: generated videos, the broken-file zoo and an image folder."""

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


@pytest.fixture()
def list_files():
    """`listing(folder)`: every entry under a folder, hidden temporaries included."""
    return listing


@pytest.fixture(scope="session")
def source_frames():
    """`make_frames(n)`: the exact RGB frames the test videos were encoded from."""
    return make_frames



@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good videos (imageio: moov at end; PyAV faststart), a short one, and the broken-file zoo."""
    root = tmp_path_factory.mktemp("media")
    frames = make_frames()
    out = {"good": root / "good.mp4", "faststart": root / "faststart.mp4", "short": root / "short.mp4"}
    write_mp4_imageio(out["good"], frames)
    write_mp4_pyav(out["faststart"], frames, faststart=True)
    write_mp4_imageio(out["short"], make_frames(5))
    good, fast = out["good"].read_bytes(), out["faststart"].read_bytes()
    broken = {
        "empty": b"",
        "truncated": good[: len(good) // 2],           # moov atom at the end: header missing
        "truncated_faststart": fast[: len(fast) // 2],  # header fine, frame data cut
        "random": np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8).tobytes(),
        "text": b"this is not a video\n" * 20,
    }
    for name, blob in broken.items():
        out[name] = root / f"{name}.mp4"
        out[name].write_bytes(blob)
    out["missing"] = root / "missing.mp4"
    return out


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    """12 PNG frames named frame1.png ... frame12.png (natural order differs from plain string order)."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(make_frames(12)):
        Image.fromarray(frame).save(folder / f"frame{i + 1}.png")
    (folder / "notes.txt").write_text("ignored\n")
    return folder
