"""Video and image-folder reading with uniform frame sampling (paper Sec. 4.1: "uniformly sample 32 frames").

Backends: decord (fast seeking) first, PyAV as the fallback when decord is missing or cannot decode the file. Every
way a file can be unusable (missing, empty, truncated, not a video, unreadable folder, folder without images) ends
in a `VideoError` with one line naming the path; the failure modes of both backends are listed in
`../shared/docs/STACK.md` Sec. 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidllm_core.errors import VideoError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})


@dataclass(frozen=True)
class Frames:
    """Frames sampled from one video or image folder.

    images:     uint8 [S, H, W, 3] RGB
    indices:    int64 [S] source frame indices (position in the sorted file list for a folder)
    timestamps: float64 [S] presentation time in seconds, or None for an image folder
    fps:        average frame rate of the video, or None for an image folder
    source:     the path that was read
    backend:    "decord", "pyav", "images" or "scannet"
    num_source_frames: number of frames (or images) in the source
    ids:        one id per sampled frame: the source index for a video, the file name for a folder
    """

    images: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray | None
    fps: float | None
    source: str
    backend: str
    num_source_frames: int
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns from headers or a folder listing without decoding any frame."""

    kind: str  # "video" or "images"
    num_frames: int
    fps: float | None
    width: int | None
    height: int | None
    files: tuple[Path, ...] = ()  # the sorted image files of a folder


def sample_indices(num_source: int, num_frames: int) -> np.ndarray:
    """Uniform indices `linspace(0, n-1, S).round()` (round half to even), de-duplicated when n < S."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_source < 1:
        raise ValueError(f"num_source must be >= 1, got {num_source}")
    idx = np.linspace(0, num_source - 1, num_frames).round().astype(np.int64)
    return np.unique(idx)


def _natural_key(path: Path) -> list[object]:
    """Sort 'frame2.png' before 'frame10.png': digit runs compare as integers, the rest as lower-case text."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _list_images(folder: Path) -> tuple[Path, ...]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise VideoError(f"cannot read image folder '{folder}': {exc.strerror or exc}") from None
    files = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise VideoError(f"image folder '{folder}' contains no .jpg/.jpeg/.png images")
    return tuple(sorted(files, key=_natural_key))


def _not_a_video(path: Path) -> VideoError:
    return VideoError(f"cannot decode video '{path}': file is truncated or not a video")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"video not found: '{path}'")
    if not path.is_file():
        raise VideoError(f"not a video file or image folder: '{path}'")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise VideoError(f"cannot read video '{path}': {exc.strerror or exc}") from None
    if size == 0:
        raise VideoError(f"cannot decode video '{path}': file is empty (0 bytes)")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Check that `path` is a readable video (container header + a video stream) or an image folder.

    Uses PyAV for the header because it fails quietly; decord writes ffmpeg log lines on stderr for broken files.
    """
    path = Path(path)
    if path.is_dir():
        files = _list_images(path)
        return VideoInfo(kind="images", num_frames=len(files), fps=None, width=None, height=None, files=files)
    _check_file(path)
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"cannot decode video '{path}': it has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            num = int(stream.frames or 0)
            if num <= 0:  # some containers do not store a frame count: count packets (no decoding)
                num = sum(1 for packet in container.demux(stream) if packet.size > 0)
            if num <= 0:
                raise _not_a_video(path)
            return VideoInfo(kind="video", num_frames=num, fps=float(rate) if rate else None,
                             width=stream.codec_context.width or None, height=stream.codec_context.height or None)
    except VideoError:
        raise
    except Exception:  # av.error.* (InvalidDataError, ...), also raised for a file that vanished meanwhile
        raise _not_a_video(path) from None


_Decoded = tuple[np.ndarray, np.ndarray, np.ndarray, float | None, int]  # images, indices, times, fps, n


def _read_decord(path: Path, num_frames: int) -> _Decoded:
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # decord's own bundled ffmpeg only; failures still raise
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    num_source = len(reader)
    idx = sample_indices(num_source, num_frames)
    images = reader.get_batch(idx.tolist()).asnumpy()
    timestamps = reader.get_frame_timestamp(idx.tolist())[:, 0].astype(np.float64)
    fps = float(reader.get_avg_fps()) or None
    return images, idx, timestamps, fps, num_source


def _read_pyav(path: Path, num_frames: int, info: VideoInfo) -> _Decoded:
    """Decode sequentially (PyAV cannot seek frame-exactly in general) and keep the sampled frames, turned upright by
    the stream's display rotation (the display-matrix side data phones write; decord applies it too)."""
    import av

    idx = sample_indices(info.num_frames, num_frames)
    wanted = {int(i): k for k, i in enumerate(idx)}
    images: list[np.ndarray | None] = [None] * len(idx)
    times = np.zeros(len(idx), dtype=np.float64)
    last = int(idx[-1])
    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            for frame in container.decode(stream):
                k = wanted.get(decoded)
                if k is not None:
                    images[k] = upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                    times[k] = (float(frame.time) - start) if frame.time is not None else decoded / (info.fps or 1.0)
                decoded += 1
                if decoded > last:
                    break
    except VideoError:
        raise
    except Exception:
        raise _not_a_video(path) from None
    if any(im is None for im in images):
        raise VideoError(f"cannot decode video '{path}': it ended after {decoded} of {info.num_frames} frames "
                         f"(file is truncated)")
    return np.stack(images), idx, times, info.fps, info.num_frames


def upright(image: np.ndarray, rotation: float | int | None) -> np.ndarray:
    """`image` [H,W,C] turned by `rotation` degrees counter-clockwise (the display-matrix convention of FFmpeg and
    PyAV's `VideoFrame.rotation`); multiples of 90 only, anything else is refused."""
    degrees = int(round(float(rotation or 0)))
    if degrees % 90:
        raise VideoError(f"unsupported display rotation of {degrees} degrees (only multiples of 90)")
    return np.ascontiguousarray(np.rot90(image, (degrees // 90) % 4))


def rgb8(img: "Image.Image") -> np.ndarray:
    """A decoded image -> uint8 [H,W,3] RGB.

    Transparency is composited on white (like VGGT's load_and_preprocess_images). 16-bit greyscale (PIL modes I;16*,
    I) keeps its top 8 bits (value >> 8), the rule Pillow already applies to 48-bit RGB PNGs, instead of being
    clipped to white; a 32-bit integer image with values above 65535 is refused (ValueError).
    """
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f"{img.mode} image with values outside 0..65535 is not a colour frame")
        grey = (arr >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image(file: Path) -> np.ndarray:
    """One image file -> uint8 [H,W,3] RGB (see `rgb8`); VideoError (one line) when it cannot be read, including a
    possible decompression bomb (over PIL's MAX_IMAGE_PIXELS, where PIL itself only warns up to twice that)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                img.load()
                return rgb8(img)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise VideoError(f"cannot read image '{file}': {exc}") from None


def stack_images(images: list[np.ndarray], folder: Path) -> np.ndarray:
    """Stack same-size frames; VideoError naming two of the sizes otherwise."""
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        (h0, w0, _), (h1, w1, _) = sorted(shapes)[:2]
        raise VideoError(f"images in '{folder}' have different sizes ({w0}x{h0} and {w1}x{h1}); "
                         f"resize them to one size first")
    return np.stack(images)


def _read_images(folder: Path, num_frames: int, files: tuple[Path, ...]) -> Frames:
    idx = sample_indices(len(files), num_frames)
    out = stack_images([read_image(files[int(i)]) for i in idx], folder)
    return Frames(images=out, indices=idx, timestamps=None, fps=None, source=str(folder), backend="images",
                  num_source_frames=len(files), ids=tuple(files[int(i)].name for i in idx))


def read_frames(path: str | os.PathLike, num_frames: int, backend: str = "auto") -> Frames:
    """Read `num_frames` uniformly sampled RGB frames from a video file or a folder of images.

    backend: "auto" (decord, then PyAV if decord is missing or fails), "decord" or "pyav".
    A folder is read as images sorted by name (digit runs compare as numbers); timestamps and fps are None.
    Fewer than `num_frames` frames come back when the source is shorter (indices are de-duplicated).
    Raises VideoError (one line) for anything that cannot be read.
    """
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav, got {backend!r}")
    if num_frames < 1:
        raise VideoError(f"number of frames must be >= 1, got {num_frames}")
    path = Path(path)
    info = probe(path)
    if info.kind == "images":
        return _read_images(path, num_frames, info.files)

    result = None
    if backend in ("auto", "decord"):
        try:
            result, used = _read_decord(path, num_frames), "decord"
        except ImportError:
            if backend == "decord":
                raise VideoError("decord is not installed (pip install decord; x86_64 only)") from None
        except Exception:  # RuntimeError / DECORDError / IndexError, see STACK.md Sec. 2
            if backend == "decord":
                raise _not_a_video(path) from None
    if result is None:
        result, used = _read_pyav(path, num_frames, info), "pyav"
    images, idx, times, fps, num_source = result
    return Frames(images=np.ascontiguousarray(images, dtype=np.uint8), indices=idx, timestamps=times, fps=fps,
                  source=str(path), backend=used, num_source_frames=num_source, ids=tuple(str(int(i)) for i in idx))
