"""A small semantic teacher for Stage 1 of the demo model (stands in for CLIP in Vid-LLM Sec. 3.4, Eq. 6-7): a DINOv2-
style ViT trained to classify each patch's object category and colour, labels read from the synthrooms renderer's
instance masks and `scene.json` (docs/training.md, "Demo model").

The result is a `DinoEncoder` directory (`model.safetensors` with `encoder.*` keys + `config.json` with `num_heads`)
that Stage 1 loads as `semantic_teacher: {kind: dino, path: DIR}`; the classification heads are saved beside the
encoder under `head_*` keys (ignored by the teacher loader).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vidllm_core.errors import DataError
from vidllm_core.io import replace_dir
from vidllm_core.models.aggregator import IMAGENET_MEAN, IMAGENET_STD
from vidllm_core.models.encoder import DinoEncoder

IGNORE = -100  # label of patches without a colour (room surfaces) for cross-entropy
ROOM_WEIGHT = 0.2  # cross-entropy weight of the room-surface class


@dataclass(frozen=True)
class SemanticTeacherSpec:
    """Sizes and optimisation of the teacher. `image_size`: short side (the student's); `frames`: frames per step."""

    embed_dim: int = 96
    depth: int = 3
    num_heads: int = 4
    image_size: int = 84
    patch_size: int = 14
    steps: int = 300
    frames: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class Vocab:
    """Category labels: 0 = room surface (floor, walls, ceiling), 1.. = object categories; colours: 0.. ."""

    categories: tuple[str, ...]
    colours: tuple[str, ...]


def default_vocab() -> Vocab:
    """The synthrooms catalogue's categories and colours (vidllm_core.data.synth.catalog)."""
    from vidllm_core.data.synth.catalog import CATEGORIES, COLOURS

    return Vocab(("room",) + tuple(CATEGORIES), tuple(COLOURS))


def patch_labels(instance: np.ndarray, objects: dict[int, tuple[str, str]], vocab: Vocab, patch: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids [H, W] (0 = room, object id + 1 otherwise; H, W multiples of `patch`) -> per-patch category and
    colour labels [H/p, W/p]: the majority instance of each patch decides; room patches get colour IGNORE."""
    h, w = instance.shape
    if h % patch or w % patch:
        raise ValueError(f"instance map {h}x{w} is not a multiple of the patch size {patch}")
    gh, gw = h // patch, w // patch
    blocks = instance.reshape(gh, patch, gw, patch).transpose(0, 2, 1, 3).reshape(gh * gw, patch * patch)
    cat_index = {c: i for i, c in enumerate(vocab.categories)}
    col_index = {c: i for i, c in enumerate(vocab.colours)}
    cats = np.zeros(gh * gw, dtype=np.int64)
    cols = np.full(gh * gw, IGNORE, dtype=np.int64)
    for k, row in enumerate(blocks):
        values, counts = np.unique(row, return_counts=True)
        inst = int(values[np.argmax(counts)])
        if inst == 0 or (inst - 1) not in objects:
            continue
        category, colour = objects[inst - 1]
        cats[k] = cat_index.get(category, 0)
        cols[k] = col_index.get(colour, IGNORE)
    return cats.reshape(gh, gw), cols.reshape(gh, gw)


class SceneFrames:
    """Frames of synthrooms scene folders (`scenes/<id>/color`, `instance`, `scene.json`) with patch labels."""

    def __init__(self, scenes_dir: str | Path, scene_ids: Sequence[str], vocab: Vocab, image_size: int,
                 patch: int) -> None:
        root = Path(scenes_dir)
        self.vocab, self.image_size, self.patch = vocab, image_size, patch
        self.frames: list[tuple[Path, Path, dict[int, tuple[str, str]]]] = []
        for sid in scene_ids:
            meta = root / sid / "scene.json"
            if not meta.is_file():
                raise DataError(f"{root / sid}: no scene.json (a synthrooms scene folder is needed)")
            data = json.loads(meta.read_text(encoding="utf-8"))
            objects = {int(o["id"]): (str(o["category"]), str(o["colour"])) for o in data["objects"]}
            for color in sorted((root / sid / "color").glob("*.jpg")):
                inst = root / sid / "instance" / f"{color.stem}.png"
                if inst.is_file():
                    self.frames.append((color, inst, objects))
        if not self.frames:
            raise DataError(f"no frames with instance masks under {root}")

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """-> image [3, H, W] in [0, 1] (short side `image_size`, cropped to the patch grid), category and colour
        labels [H/p, W/p]."""
        from PIL import Image

        from vidllm_core.data.preprocess import preprocess_with_info

        color, inst_path, objects = self.frames[index]
        with Image.open(color) as im:
            rgb = im.convert("RGB")
        images, infos = preprocess_with_info([rgb], "short_side", self.image_size, self.patch)
        info = infos[0]
        with Image.open(inst_path) as im:
            inst = np.asarray(im).astype(np.int32)
        resized = np.asarray(Image.fromarray(inst, mode="I").resize((info.resized_width, info.resized_height),
                                                                     Image.NEAREST))
        h, w = images.shape[-2:]
        crop = resized[info.crop_top: info.crop_top + h, info.crop_left: info.crop_left + w]
        cats, cols = patch_labels(crop, objects, self.vocab, self.patch)
        return images[0], torch.from_numpy(cats), torch.from_numpy(cols)


class SemanticTeacherNet(nn.Module):
    """DinoEncoder + two linear per-patch classifiers (category, colour); ImageNet normalisation inside."""

    def __init__(self, spec: SemanticTeacherSpec, vocab: Vocab) -> None:
        super().__init__()
        self.encoder = DinoEncoder(img_size=spec.image_size, patch_size=spec.patch_size, embed_dim=spec.embed_dim,
                                   depth=spec.depth, num_heads=spec.num_heads)
        self.head_category = nn.Linear(spec.embed_dim, len(vocab.categories))
        self.head_colour = nn.Linear(spec.embed_dim, len(vocab.colours))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] in [0, 1] -> category and colour logits [B, N, classes]."""
        tokens = self.encoder((images - self.mean) / self.std)["x_norm_patchtokens"]
        return self.head_category(tokens), self.head_colour(tokens)


def _batch(data: SceneFrames, idx: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    items = [data.load(int(i)) for i in idx]
    return (torch.stack([x[0] for x in items]), torch.stack([x[1] for x in items]).flatten(1),
            torch.stack([x[2] for x in items]).flatten(1))


def _losses(net: SemanticTeacherNet, batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
    images, cats, cols = batch
    lc, lo = net(images)
    ce = nn.functional.cross_entropy
    # room patches (class 0) dominate the frames: weight them down so object categories are learnt
    weight = torch.ones(lc.shape[-1], device=lc.device)
    weight[0] = ROOM_WEIGHT
    loss_cat = ce(lc.flatten(0, 1), cats.flatten(), weight=weight)
    has_col = (cols != IGNORE).any()
    loss_col = ce(lo.flatten(0, 1), cols.flatten(), ignore_index=IGNORE) if has_col else lo.sum() * 0.0
    with torch.no_grad():
        obj = cats != 0
        stats = {"acc_category": float((lc.argmax(-1) == cats).float().mean()),
                 "acc_object_category": float((lc.argmax(-1) == cats)[obj].float().mean()) if obj.any() else math.nan,
                 "acc_colour": float((lo.argmax(-1) == cols)[cols != IGNORE].float().mean()) if has_col else math.nan}
    return loss_cat + loss_col, {"loss_category": float(loss_cat.detach()), "loss_colour": float(loss_col.detach()),
                                 **stats}


@torch.no_grad()
def evaluate(net: SemanticTeacherNet, data: SceneFrames, max_frames: int = 64, seed: int = 0) -> dict[str, float]:
    """Patch accuracies on up to `max_frames` frames drawn with a fixed seed."""
    net.eval()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), min(max_frames, len(data)), replace=False)
    _, stats = _losses(net, _batch(data, idx))
    return stats


def train_semantic_teacher(scenes_dir: str | Path, train_ids: Sequence[str], out_dir: str | Path,
                           spec: SemanticTeacherSpec = SemanticTeacherSpec(), val_ids: Sequence[str] = (),
                           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the teacher and write OUT_DIR (model.safetensors + config.json) atomically; returns the summary."""
    import shutil
    import tempfile

    from safetensors.torch import save_file

    torch.manual_seed(spec.seed)
    vocab = default_vocab()
    data = SceneFrames(scenes_dir, train_ids, vocab, spec.image_size, spec.patch_size)
    net = SemanticTeacherNet(spec, vocab)
    opt = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    warm = max(1, spec.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, spec.steps))))))
    rng = np.random.default_rng(spec.seed)
    t0 = time.time()
    stats: dict[str, float] = {}
    for step in range(1, spec.steps + 1):
        net.train()
        loss, stats = _losses(net, _batch(data, rng.integers(0, len(data), spec.frames)))
        if not torch.isfinite(loss):
            raise DataError(f"semantic teacher loss became {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if log is not None and (step % 10 == 0 or step == 1 or step == spec.steps):
            log(f"step {step:5d}/{spec.steps}  loss {float(loss.detach()):.4f}  cat acc {stats['acc_category']:.3f}  "
                f"colour acc {stats['acc_colour']:.3f}  {time.time() - t0:.0f}s")
    summary: dict[str, Any] = {"kind": "semantic_teacher", "num_heads": spec.num_heads, "spec": asdict(spec),
                               "categories": list(vocab.categories), "colours": list(vocab.colours),
                               "train_frames": len(data), "train_seconds": round(time.time() - t0, 1),
                               "last_batch": stats}
    if val_ids:
        summary["val"] = evaluate(net, SceneFrames(scenes_dir, val_ids, vocab, spec.image_size, spec.patch_size))
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
