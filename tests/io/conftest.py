"""Fixtures for the I/O tests: generated videos, the broken-file zoo and an image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from io_media import make_frames, write_mp4_imageio, write_mp4_pyav


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
