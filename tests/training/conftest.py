"""Fixtures for the training tests: tiny ScanNet-format scenes rendered analytically (a textured box room seen from
a few cameras, exact depth and poses), tiny random teachers built offline, and recipe writers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

W, H, FX = 56, 42, 40.0
ROOM = np.array([[-2.0, -1.2, -2.5], [2.5, 1.3, 2.0]])  # min / max corners, metres


def _look(forward: np.ndarray) -> np.ndarray:
    """Rotation whose columns are the camera axes (x right, y down, z forward) in the world (y down world)."""
    z = forward / np.linalg.norm(forward)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def render_room(c2w: np.ndarray, k: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast the inside of the room: (RGB uint8 [H,W,3], depth metres [H,W]) with a per-face texture."""
    v, u = np.meshgrid(np.arange(H) + 0.0, np.arange(W) + 0.0, indexing="ij")
    rays_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    rays = rays_cam @ c2w[:3, :3].T
    o = c2w[:3, 3]
    with np.errstate(divide="ignore"):
        t_hi = np.where(rays > 0, (ROOM[1] - o) / rays, (ROOM[0] - o) / rays)
    t = t_hi.min(-1)
    axis = t_hi.argmin(-1)
    hit = o + rays * t[..., None]
    depth = t * rays_cam[..., 2]
    rng = np.random.default_rng(seed)
    base = rng.uniform(60, 220, size=(3, 2, 3))
    side = (np.take_along_axis(rays, axis[..., None], -1)[..., 0] > 0).astype(int)
    col = base[axis, side]
    a, b = [np.take_along_axis(hit, ((axis + i) % 3)[..., None], -1)[..., 0] for i in (1, 2)]
    pattern = 0.75 + 0.25 * np.sign(np.sin(3.0 * a) * np.sin(3.0 * b))
    rgb = np.clip(col * pattern[..., None], 0, 255).astype(np.uint8)
    return rgb, depth


def write_scene(root: Path, scene_id: str, seed: int, frames: int = 6) -> Path:
    from PIL import Image

    d = root / scene_id
    d.mkdir(parents=True)
    k = np.array([[FX, 0, (W - 1) / 2], [0, FX, (H - 1) / 2], [0, 0, 1.0]])
    k4 = np.eye(4)
    k4[:3, :3] = k
    np.savetxt(d / "intrinsic.txt", k4, fmt="%f")
    np.savetxt(d / "depth_intrinsic.txt", k4, fmt="%f")
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.5, 0.5, 3) * np.array([1, 0.3, 1])
    yaw0 = rng.uniform(0, 2 * np.pi)
    for i in range(frames):
        yaw = yaw0 + 0.35 * i
        c2w = np.eye(4)
        c2w[:3, :3] = _look(np.array([np.sin(yaw), 0.1 * np.sin(i), np.cos(yaw)]))
        c2w[:3, 3] = centre + 0.15 * i * np.array([np.cos(yaw), 0, -np.sin(yaw)])
        rgb, depth = render_room(c2w, k, seed)
        Image.fromarray(rgb).save(d / f"{i * 10:05d}.jpg", quality=95)
        Image.fromarray(np.clip(np.rint(depth * 1000), 0, 65535).astype(np.uint16)).save(d / f"{i * 10:05d}.png")
        np.savetxt(d / f"{i * 10:05d}.txt", c2w, fmt="%f")
    return d


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """The CI machine has 2 shared cores: one intra-op thread avoids oversubscription (results are unchanged
    within the recorded tolerance)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    for i in range(3):
        write_scene(root, f"scene{i:04d}_00", seed=i)
    return root


@pytest.fixture(scope="session")
def teacher_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random VGGT-style checkpoint (aggregator.patch_embed.* only) and a tiny random CLIP vision tower."""
    import torch
    import transformers as T
    from safetensors.torch import save_file

    from vidllm_core.models.encoder import DinoEncoder

    root = tmp_path_factory.mktemp("teachers")
    torch.manual_seed(1)
    enc = DinoEncoder(img_size=56, embed_dim=48, depth=1, num_heads=2, num_register_tokens=2)
    (root / "vggt").mkdir()
    save_file({f"aggregator.patch_embed.{k}": v.contiguous() for k, v in enc.state_dict().items()},
              str(root / "vggt" / "model.safetensors"))
    torch.manual_seed(2)
    clip = T.CLIPVisionModel(T.CLIPVisionConfig(hidden_size=40, num_hidden_layers=2, num_attention_heads=2,
                                                intermediate_size=64, image_size=56, patch_size=14))
    clip.save_pretrained(str(root / "clip"))
    return {"vggt": root / "vggt", "clip": root / "clip"}


def recipe_dict(stage: str, scenes: Path, teachers: dict[str, Path] | None = None, **train: object) -> dict:
    """A tiny recipe: 3 scenes, 4 frames of 42x56, fp32, deterministic."""
    d: dict = {
        "stage": stage,
        "model": {"preset": "tiny"},
        "data": {"scenes": str(scenes), "frames": 4, "image_size": 42},
        "optim": {"lr": 1e-3, "warmup_ratio": 0.25},
        "train": {"steps": 2, "batch_size": 1, "save_every": 100, "seed": 0, **train},
    }
    if teachers is not None:
        d["distill"] = {"lam": 1.0, "geometry_teacher": {"kind": "vggt", "path": str(teachers["vggt"]),
                                                   "num_heads": 2},
                        "semantic_teacher": {"kind": "clip", "path": str(teachers["clip"])}}
    return d


@pytest.fixture(scope="session")
def make_recipe() -> Callable[..., dict]:
    return recipe_dict


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[[dict, str], Path]:
    def write(d: dict, name: str = "recipe.yaml") -> Path:
        import yaml

        p = tmp_path / name
        p.write_text(yaml.safe_dump(json.loads(json.dumps(d))), encoding="utf-8")
        return p

    return write
