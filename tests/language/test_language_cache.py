"""Scene cache: keys, round trip, atomicity, corrupt entries, default directory."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import torch

from vidllm_core.language.cache import (SceneCache, default_cache_dir, file_sha256, model_fingerprint, scene_key,
                                       tensors_equal)


def test_round_trip_is_bitwise(tmp_path: Path) -> None:
    cache = SceneCache(tmp_path / "c")
    key = scene_key("ab" * 32, {"num_frames": 16, "image_size": 168}, "cd" * 32)
    assert cache.get(key) is None and key not in cache
    tensors = {"tokens": torch.randn(1, 7, 5).to(torch.bfloat16), "xyz": torch.randn(1, 7, 3)[:, ::2],
               "mask": torch.tensor([[True, False, True, True]])}
    path = cache.put(key, tensors, {"video": "room.mp4"})
    assert path.parent.parent == tmp_path / "c" and key in cache
    got = cache.get(key)
    assert got is not None and tensors_equal(got, tensors)
    assert not tensors_equal(got, {**tensors, "mask": ~tensors["mask"]})
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    assert cache.clear() == 1 and cache.get(key) is None


def test_keys_change_with_every_input(tmp_path: Path) -> None:
    base = scene_key("a" * 64, {"num_frames": 16}, "b" * 64)
    assert base == scene_key("a" * 64, {"num_frames": 16}, "b" * 64)
    others = {scene_key("c" * 64, {"num_frames": 16}, "b" * 64), scene_key("a" * 64, {"num_frames": 8}, "b" * 64),
              scene_key("a" * 64, {"num_frames": 16}, "d" * 64)}
    assert len(others | {base}) == 4
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"x" * 10)
    fp = model_fingerprint({"name": "demo"}, [w])
    assert fp == model_fingerprint({"name": "demo"}, [w]) != model_fingerprint({"name": "tiny"}, [w])
    exact = model_fingerprint({"name": "demo"}, [w], content_hash=True)
    w.write_bytes(b"y" * 10)
    os.utime(w, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert model_fingerprint({"name": "demo"}, [w]) != fp
    assert model_fingerprint({"name": "demo"}, [w], content_hash=True) != exact
    v = tmp_path / "v.bin"
    v.write_bytes(b"video")
    assert file_sha256(v) == hashlib.sha256(b"video").hexdigest()


def test_corrupt_entry_is_a_miss_and_bad_key_rejected(tmp_path: Path) -> None:
    cache = SceneCache(tmp_path)
    key = "e" * 64
    cache.put(key, {"t": torch.ones(3)})
    cache.path(key).write_bytes(cache.path(key).read_bytes()[:20])
    assert cache.get(key) is None
    with pytest.raises(ValueError):
        cache.path("../../etc/passwd")


def test_default_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "vidllm" / "scenes"
    assert SceneCache().root == tmp_path / "vidllm" / "scenes"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "vidllm" / "scenes"
