"""The scene cache of the vision pass (not in the paper): one entry per (frame source content, sampling and
preprocessing, model) holding the pooled 3D tokens, the geometry, the network-input frames and the frame metadata, so
a later question on the same video skips decoding and the network. `pipelines.vision_pass.run_vision_pass` is its
only user.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidllm_core.data.frames import FrameSource
from vidllm_core.data.preprocess import ResizeInfo
from vidllm_core.data.video import Frames
from vidllm_core.language.cache import SceneCache, model_fingerprint, scene_key
from vidllm_core.models.vidllm import WEIGHTS_FILE, SceneEncoding
from vidllm_core.pipelines.reconstruct import PreprocessSettings, Reconstruction, preprocess_settings

if TYPE_CHECKING:
    from vidllm_core.pipelines.vision_pass import Scene

__all__ = ["cache_key", "load", "model_fingerprint_of", "sampling_args", "store"]


def model_fingerprint_of(model: Any) -> str:
    """Config + weights file (size, mtime) of a loaded model directory; config + parameter bytes for one in memory."""
    directory = getattr(model, "checkpoint_dir", None)
    if directory is not None and (Path(directory) / WEIGHTS_FILE).is_file():
        return model_fingerprint(model.config.to_dict(), [Path(directory) / WEIGHTS_FILE])
    digest = hashlib.sha256()
    for name, t in model.state_dict().items():
        digest.update(name.encode("utf-8"))
        digest.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return model_fingerprint(model.config.to_dict() | {"weights_sha256": digest.hexdigest()})


def sampling_args(model: Any, num_frames: int | None) -> dict[str, Any]:
    """Everything besides the frames and the weights that changes the encoding (part of the cache key)."""
    from vidllm_core.config import LanguageConfig

    s = preprocess_settings(model)
    lang = model.config.language or LanguageConfig()
    return {"num_frames": int(num_frames or s.num_frames), "mode": s.mode, "image_size": s.image_size,
            "patch_size": s.patch_size, "token_budget": lang.token_budget, "voxel_size": lang.voxel_size,
            "reduction": lang.pool_reduction}


def cache_key(model: Any, source: FrameSource, num_frames: int) -> str:
    return scene_key(source.fingerprint(), sampling_args(model, num_frames), model_fingerprint_of(model))


def _frames_meta(frames: Frames, infos: list[ResizeInfo]) -> str:
    return json.dumps({
        "ids": list(frames.ids), "indices": [int(i) for i in frames.indices],
        "timestamps": None if frames.timestamps is None else [float(t) for t in frames.timestamps],
        "fps": frames.fps, "source": frames.source, "backend": frames.backend,
        "num_source_frames": frames.num_source_frames, "infos": [dict(i.__dict__) for i in infos]})


def store(cache: SceneCache, key: str, scene: "Scene") -> None:
    """Write `scene` (made with tokens) under `key`; a read-only or full cache directory is skipped with a
    VidLLMWarning, as the answer does not depend on it."""
    assert scene.encoding is not None
    tensors, meta = scene.encoding.to_tensors()
    tensors = tensors | {"images": torch.from_numpy(np.ascontiguousarray(scene.images))}
    try:
        cache.put(key, tensors, meta | {"frames": _frames_meta(scene.frames, scene.reconstruction.infos),
                                        "video": str(scene.source.path)})
    except OSError as exc:  # vidllm_core.io names the entry and maps a full disk to OSError, whatever the writer
        import warnings

        from vidllm_core.errors import VidLLMWarning

        warnings.warn(f"the scene cache was not written ({exc.strerror or exc}: {exc.filename or cache.root}); "
                      "the answer is unaffected", VidLLMWarning, stacklevel=2)


def load(cache: SceneCache, key: str, settings: PreprocessSettings,
         device: Any) -> tuple[SceneEncoding, Reconstruction, Frames] | None:
    """The cached scene under `key`, or None (absent, or an entry of another layout: it is recomputed)."""
    hit = cache.get(key)
    if hit is None:
        return None
    try:
        meta = _read_meta(cache.path(key))
        encoding = SceneEncoding.from_tensors(hit, meta).to(device)
        fm = json.loads(meta["frames"])
        images = hit["images"].numpy()
        infos = [ResizeInfo(**i) for i in fm["infos"]]
    except (KeyError, ValueError, TypeError):
        return None
    frames = Frames(images=np.zeros((0, 0, 0, 3), np.uint8), indices=np.asarray(fm["indices"], np.int64),
                    timestamps=None if fm["timestamps"] is None else np.asarray(fm["timestamps"], np.float64),
                    fps=fm["fps"], source=fm["source"], backend=fm["backend"],
                    num_source_frames=int(fm["num_source_frames"]), ids=tuple(fm["ids"]))
    return encoding, Reconstruction.from_geometry(encoding.geometry, images, infos, settings), frames


def _read_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})
