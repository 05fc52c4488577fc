"""The demo model's semantic teacher (vidllm_core/training/semantic_teacher.py): patch labels from instance masks,
and a short training run that Stage 1 can load as a `dino` teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidllm_core.training.semantic_teacher import (
    IGNORE,
    SceneFrames,
    SemanticTeacherSpec,
    Vocab,
    patch_labels,
    train_semantic_teacher,
)

VOCAB = Vocab(("room", "chair", "lamp"), ("red", "blue"))
OBJECTS = {0: ("chair", "red"), 1: ("lamp", "blue")}


def test_patch_labels_majority() -> None:
    inst = np.zeros((4, 6), dtype=np.int32)  # 2x3 patches of 2x2 pixels
    inst[0:2, 0:2] = 1                       # patch (0,0): chair
    inst[0:2, 2:4] = [[2, 2], [2, 0]]        # patch (0,1): 3 of 4 pixels lamp
    inst[2:4, 4:6] = [[1, 0], [0, 0]]        # patch (1,2): mostly room
    cats, cols = patch_labels(inst, OBJECTS, VOCAB, 2)
    assert cats.tolist() == [[1, 2, 0], [0, 0, 0]]
    assert cols.tolist() == [[0, 1, IGNORE], [IGNORE, IGNORE, IGNORE]]
    with pytest.raises(ValueError, match="multiple of the patch size"):
        patch_labels(inst[:3], OBJECTS, VOCAB, 2)


def _scene(root: Path, sid: str) -> None:
    d = root / sid
    (d / "color").mkdir(parents=True)
    (d / "instance").mkdir()
    inst = np.zeros((42, 56), dtype=np.uint16)
    inst[:, :28] = 1  # left half: the chair (object 0)
    rgb = np.zeros((42, 56, 3), dtype=np.uint8)
    rgb[:, :28] = (220, 30, 30)
    for k in range(2):
        Image.fromarray(rgb).save(d / "color" / f"0000{k}.jpg")
        Image.fromarray(inst).save(d / "instance" / f"0000{k}.png")
    objs = [{"id": 0, "category": "chair", "colour": "red"}, {"id": 1, "category": "lamp", "colour": "blue"}]
    (d / "scene.json").write_text(json.dumps({"objects": objs}))


def test_frames_and_training_give_a_loadable_teacher(tmp_path: Path) -> None:
    _scene(tmp_path / "scenes", "s0")
    frames = SceneFrames(tmp_path / "scenes", ["s0"], VOCAB, image_size=42, patch=14)
    image, cats, cols = frames.load(0)
    assert image.shape == (3, 42, 56) and cats.shape == (3, 4)
    assert (cats[:, :2] == 1).all() and (cats[:, 2:] == 0).all() and (cols[:, :2] == 0).all()

    spec = SemanticTeacherSpec(embed_dim=32, depth=1, num_heads=2, image_size=42, steps=3, frames=2)
    out = tmp_path / "teacher"
    summary = train_semantic_teacher(tmp_path / "scenes", ["s0"], out, spec)
    assert summary["train_frames"] == 2 and np.isfinite(summary["last_batch"]["loss_category"])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]

    from vidllm_core.training.recipe import TeacherSpec
    from vidllm_core.training.teachers import build_teacher

    teacher = build_teacher(TeacherSpec(kind="dino", path=str(out)))
    enc = teacher.encode(image[None])
    assert teacher.width == 32 and enc.grid == (3, 4) and enc.tokens.shape == (1, 12, 32)
    assert torch.isfinite(enc.tokens).all()
