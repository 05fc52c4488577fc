"""Scene cache: the expensive vision pass (frames -> encoder -> CTA -> reconstruction -> 3D tokens, Vid-LLM Sec. 3.1-3.3) saved as safetensors.

Key = sha256 of a canonical JSON of (video content hash, sampling arguments, model fingerprint, cache format
version), so a new video, other sampling arguments or other weights never hit an old entry. A model fingerprint is
the sha256 of the canonical config JSON plus, per weights file, its size and mtime (fast) or its content hash
(`content_hash=True`, exact). Entries are written atomically (temporary file + rename); an unreadable entry counts
as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidllm_core.io import atomic_path, file_sha256

__all__ = ["CACHE_VERSION", "SceneCache", "default_cache_dir", "file_sha256", "model_fingerprint", "scene_key",
           "tensors_equal"]

CACHE_VERSION = 1
_KEY = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/vidllm/scenes`, else `~/.cache/vidllm/scenes` (read when called, not at import)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vidllm" / "scenes"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def model_fingerprint(config: Mapping[str, Any], weights: Iterable[str | Path] = (),
                      content_hash: bool = False) -> str:
    """Hex sha256 identifying a model: its config dict + each weights file (size and mtime, or content hash)."""
    files = []
    for w in weights:
        p = Path(w)
        stat = p.stat()
        files.append({"name": p.name, "sha256": file_sha256(p)} if content_hash else
                     {"name": p.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return hashlib.sha256(_canonical({"config": dict(config), "weights": files})).hexdigest()


def scene_key(video_sha256: str, sampling: Mapping[str, Any], fingerprint: str) -> str:
    """Hex sha256 of (video content hash, sampling arguments, model fingerprint, cache format version)."""
    return hashlib.sha256(_canonical({"video": video_sha256, "sampling": dict(sampling), "model": fingerprint,
                                      "version": CACHE_VERSION})).hexdigest()


class SceneCache:
    """A directory of `<key[:2]>/<key>.safetensors` entries.

    Args:
        root: the cache directory; None -> `default_cache_dir()`. Created on the first `put`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"cache key must be 64 lowercase hex characters, got {key!r}")
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, Tensor] | None:
        """The stored tensors, or None on a miss (absent, truncated or unreadable entry)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError):
            return None

    def put(self, key: str, tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> Path:
        """Store tensors (copied to contiguous CPU memory) atomically; returns the entry's path."""
        path = self.path(key)
        flat = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
        meta = {str(k): _utf8(str(v)) for k, v in (metadata or {}).items()}
        meta["vidllm_cache_version"] = str(CACHE_VERSION)
        with atomic_path(path) as tmp:
            save_file(flat, str(tmp), metadata=meta)
        return path

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        removed = 0
        if self.root.is_dir():
            for entry in self.root.glob("??/*.safetensors"):
                entry.unlink(missing_ok=True)
                removed += 1
        return removed


def _utf8(text: str) -> str:
    """Metadata must be UTF-8: a non-UTF-8 file name (lone surrogates) is kept as backslash escapes."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def tensors_equal(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> bool:
    """True when both hold the same names with bitwise-equal tensors (dtype and shape included)."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
