"""Video -> `SceneEncoding` (Vid-LLM Sec. 3.1-3.3: frames -> encoder -> CTA -> reconstruction -> pooled 3D tokens),
with the scene cache: one vision pass per (video bytes, sampling arguments, model), reused by every later question.

Used by `vidllm ask | caption | ground`, the model-driven `vidllm eval` language tasks and `benchmarks/ask.py`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidllm_core.errors import CheckpointError
from vidllm_core.language.cache import SceneCache, file_sha256, model_fingerprint, scene_key
from vidllm_core.models.vidllm import WEIGHTS_FILE, SceneEncoding, VidLLM

__all__ = ["PreparedScene", "encode_video", "model_fingerprint_of", "sampling_args", "video_sha256"]


@dataclass
class PreparedScene:
    """A scene ready for questions.

    encoding: the `SceneEncoding` (on the model's device). images: uint8 [S, H, W, 3] the preprocessed frames the
    model saw (for overlays and coloured points). source_frames: the sampled frame indices. cached: True when the
    vision pass was skipped (cache hit). key: the cache key (None without a cache). timings: seconds per stage.
    """

    encoding: SceneEncoding
    images: np.ndarray
    source_frames: list[int]
    cached: bool
    key: str | None
    timings: dict[str, float] = field(default_factory=dict)


def video_sha256(path: str | Path) -> str:
    """sha256 of a video file's bytes; for an image folder, of every image's name and bytes in sorted order."""
    from vidllm_core.data.video import IMAGE_SUFFIXES

    p = Path(path)
    if not p.is_dir():
        return file_sha256(p)
    digest = hashlib.sha256()
    for f in sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() in IMAGE_SUFFIXES):
        digest.update(f.name.encode("utf-8") + b"\0" + file_sha256(f).encode("ascii"))
    return digest.hexdigest()


def model_fingerprint_of(model: VidLLM) -> str:
    """Config + weights file (size, mtime) of a loaded model directory; config + parameter bytes for one in memory."""
    directory = getattr(model, "checkpoint_dir", None)
    if directory is not None and (Path(directory) / WEIGHTS_FILE).is_file():
        return model_fingerprint(model.config.to_dict(), [Path(directory) / WEIGHTS_FILE])
    digest = hashlib.sha256()
    for name, t in model.state_dict().items():
        digest.update(name.encode("utf-8"))
        digest.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return model_fingerprint(model.config.to_dict() | {"weights_sha256": digest.hexdigest()})


def sampling_args(model: VidLLM, num_frames: int | None) -> dict[str, Any]:
    """Everything besides the video and the weights that changes the encoding (part of the cache key)."""
    from vidllm_core.config import LanguageConfig

    inp, lang = model.config.input, model.config.language or LanguageConfig()
    return {"num_frames": int(num_frames or inp.num_frames), "mode": inp.mode, "image_size": inp.image_size,
            "patch_size": model.config.encoder.patch_size, "token_budget": lang.token_budget,
            "voxel_size": lang.voxel_size, "reduction": lang.pool_reduction}


def encode_video(model: VidLLM, video: str | Path, num_frames: int | None = None, cache: SceneCache | None = None,
                 device: str | torch.device = "cpu") -> PreparedScene:
    """Read + sample + preprocess `video` like the model was trained, run `model.encode_scene`, cache the result.

    Args:
        model: a `VidLLM` (eval mode) on `device`.
        video: a video file or a folder of .jpg/.png frames.
        num_frames: frames sampled uniformly (default: `config.input.num_frames`).
        cache: a `SceneCache`; None disables caching. A hit skips decoding and the network entirely.

    Raises:
        VideoError for unreadable input; CheckpointError when the network output is not finite.
    """
    from vidllm_core.data.preprocess import preprocess_with_info
    from vidllm_core.data.video import probe, read_frames

    timings: dict[str, float] = {}
    t = time.perf_counter()
    probe(video)  # a broken input fails here, before any work
    args = sampling_args(model, num_frames)
    key = None
    if cache is not None:
        key = scene_key(video_sha256(video), args, model_fingerprint_of(model))
        hit = cache.get(key)
        timings["cache_lookup_s"] = time.perf_counter() - t
        if hit is not None:
            meta = _read_meta(cache.path(key))
            try:
                encoding = SceneEncoding.from_tensors(hit, meta).to(device)
                images = hit["images"].numpy()
                frames = hit["source_frames"].tolist()
            except (KeyError, ValueError):
                pass  # an entry from another layout: recompute and overwrite
            else:
                return PreparedScene(encoding, images, frames, True, key, timings)
    t = time.perf_counter()
    clip = read_frames(video, args["num_frames"])
    images, _ = preprocess_with_info(list(clip.images), mode=args["mode"], target_size=args["image_size"],
                                     patch_size=args["patch_size"])
    timings["read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    encoding = model.encode_scene(images.to(device))
    timings["vision_s"] = time.perf_counter() - t
    g = encoding.geometry
    if not (torch.isfinite(encoding.tokens).all() and torch.isfinite(g.extrinsic).all()
            and torch.isfinite(g.depth).all()):
        raise CheckpointError("the network predicted non-finite values for this video; the model weights look "
                              "untrained or broken")
    rgb = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    source_frames = [int(i) for i in clip.indices.tolist()]
    if cache is not None and key is not None:
        tensors, meta = encoding.to_tensors()
        tensors = tensors | {"images": rgb, "source_frames": torch.tensor(source_frames, dtype=torch.int64)}
        try:
            cache.put(key, tensors, meta | {"video": str(video)})
        except OSError:
            pass  # a read-only or full cache directory must not fail the answer
    return PreparedScene(encoding, rgb.numpy(), source_frames, False, key, timings)


def _read_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})
