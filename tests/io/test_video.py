"""Video / image-folder reading: uniform sampling, decord vs PyAV, fallbacks, and every broken-file case."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidllm_core.data import video as video_mod
from vidllm_core.data.video import probe, read_frames, sample_indices
from vidllm_core.errors import VideoError

WIDTH, HEIGHT, NUM_FRAMES, FPS = 160, 120, 24, 12  # the videos of conftest.media
BROKEN = ["missing", "empty", "truncated", "truncated_faststart", "random", "text"]  # files made in conftest


def test_sample_indices_uniform_and_deduplicated() -> None:
    assert sample_indices(24, 8).tolist() == np.linspace(0, 23, 8).round().astype(int).tolist()
    assert sample_indices(24, 8).tolist() == [0, 3, 7, 10, 13, 16, 20, 23]
    assert sample_indices(3, 8).tolist() == [0, 1, 2]
    assert sample_indices(10, 1).tolist() == [0]
    assert sample_indices(5, 4).tolist() == [0, 1, 3, 4]  # linspace 0, 1.33, 2.67, 4
    assert sample_indices(10, 3).tolist() == [0, 4, 9]  # 4.5 rounds half to even


def test_decord_reads_sampled_frames(media: dict[str, Path], source_frames) -> None:
    clip = read_frames(media["good"], 8)
    assert clip.backend == "decord"
    assert clip.images.shape == (8, HEIGHT, WIDTH, 3) and clip.images.dtype == np.uint8
    assert clip.indices.tolist() == sample_indices(NUM_FRAMES, 8).tolist()
    assert clip.num_source_frames == NUM_FRAMES and clip.fps == pytest.approx(FPS)
    np.testing.assert_allclose(clip.timestamps, clip.indices / FPS, atol=1e-4)
    source = source_frames()[clip.indices].astype(np.int16)
    assert np.abs(clip.images.astype(np.int16) - source).mean() < 4  # lossy h264 + 4:2:0 chroma
    # the moving square is where the sampled frame index puts it (columns 8+4i .. 40+4i)
    for k, i in enumerate(clip.indices):
        assert clip.images[k, 30:50, 12 + 4 * i:36 + 4 * i].mean() > 230


@pytest.mark.parametrize("name", ["good", "faststart"])
def test_decord_and_pyav_give_identical_frames(media: dict[str, Path], name: str) -> None:
    a = read_frames(media[name], 7, backend="decord")
    b = read_frames(media[name], 7, backend="pyav")
    assert (a.backend, b.backend) == ("decord", "pyav")
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.images, b.images)
    np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-4)


def test_pyav_fallback_when_decord_missing(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` raise ImportError
    clip = read_frames(media["good"], 5)
    assert clip.backend == "pyav" and clip.images.shape == (5, HEIGHT, WIDTH, 3)


def test_pyav_fallback_when_decord_fails(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("Error reading ...")

    reference = read_frames(media["good"], 5, backend="decord")
    monkeypatch.setattr(video_mod, "_read_decord", broken)
    clip = read_frames(media["good"], 5)
    assert clip.backend == "pyav"
    assert np.array_equal(clip.images, reference.images)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_short_video_gives_fewer_unique_frames(media: dict[str, Path], backend: str) -> None:
    clip = read_frames(media["short"], 8, backend=backend)
    assert clip.indices.tolist() == [0, 1, 2, 3, 4] and len(clip.images) == 5


def test_image_folder_natural_order(image_dir: Path, source_frames) -> None:
    clip = read_frames(image_dir, 4)
    assert clip.backend == "images" and clip.timestamps is None and clip.fps is None
    assert clip.num_source_frames == 12 and clip.indices.tolist() == [0, 4, 7, 11]
    expected = source_frames(12)[[0, 4, 7, 11]]  # frame1, frame5, frame8, frame12 (PNG is lossless)
    assert np.array_equal(clip.images, expected)


def test_image_folder_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((6, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255  # left half opaque red-ish, right half transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    clip = read_frames(tmp_path, 1)
    assert clip.images[0, 0, 0].tolist() == [200, 0, 0] and clip.images[0, 0, 7].tolist() == [255, 255, 255]


def _assert_one_line(exc: VideoError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message and str(path) in message and len(message) < 200


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_raise_one_line_video_error(media: dict[str, Path], name: str, backend: str,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(VideoError) as info:
        read_frames(media[name], 8, backend=backend)
    _assert_one_line(info.value, media[name])
    assert capfd.readouterr().err == ""  # no ffmpeg / decord log lines leak onto stderr


def test_broken_messages_say_what_is_wrong(media: dict[str, Path]) -> None:
    with pytest.raises(VideoError, match="not found"):
        read_frames(media["missing"], 2)
    with pytest.raises(VideoError, match="empty"):
        read_frames(media["empty"], 2)
    with pytest.raises(VideoError, match="truncated or not a video"):
        read_frames(media["text"], 2)


def test_probe_catches_header_damage_without_decoding(media: dict[str, Path]) -> None:
    info = probe(media["good"])
    assert (info.kind, info.num_frames, info.width, info.height) == ("video", NUM_FRAMES, WIDTH, HEIGHT)
    for name in ["truncated", "random", "text", "empty", "missing"]:
        with pytest.raises(VideoError):
            probe(media[name])


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(VideoError, match="no .jpg/.jpeg/.png images") as info:
        read_frames(tmp_path, 4)
    _assert_one_line(info.value, tmp_path)


def test_unreadable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path) -> None:  # chmod 000 does not stop root, so simulate the OS refusal
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(VideoError, match="cannot read image folder .*Permission denied"):
        read_frames(tmp_path, 4)


def test_folder_with_corrupt_image(image_dir: Path) -> None:
    (image_dir / "frame12.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VideoError, match="cannot read image .*frame12.png"):
        read_frames(image_dir, 12)


def test_folder_with_mixed_sizes(image_dir: Path) -> None:
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(image_dir / "frame99.png")
    with pytest.raises(VideoError, match="different sizes"):
        read_frames(image_dir, 13)


def test_bad_frame_count(media: dict[str, Path]) -> None:
    with pytest.raises(VideoError, match=">= 1"):
        read_frames(media["good"], 0)
