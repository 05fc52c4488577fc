"""Frozen Stage-1 teachers (Vid-LLM Sec. 3.4, Eq. 5-7): the geometry teacher is the DINOv2 patch embed of VGGT
(`aggregator.patch_embed.*`), the semantic teacher a CLIP vision tower (LLaVA-3D: CLIP ViT-L/14-336) from a local
Hugging Face directory; any module mapping images to patch tokens can be plugged in (`Teacher`).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidllm_core.errors import PICKLE_REFUSED, CheckpointError, ConfigError
from vidllm_core.models.aggregator import IMAGENET_MEAN, IMAGENET_STD
from vidllm_core.models.encoder import DinoEncoder
from vidllm_core.training.recipe import TeacherSpec

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# DINOv2 widths -> heads (ViT-S/B/L/g); used when a checkpoint does not say.
_HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1536: 24}


@dataclass
class TeacherOutput:
    """tokens [B, N, C] patch tokens only, grid (h, w) with N = h * w."""

    tokens: Tensor
    grid: tuple[int, int]


class Teacher(nn.Module):
    """A frozen image -> patch-token encoder. `encode` takes images [B,3,H,W] in [0,1] and handles resizing and
    normalisation. Subclass (or wrap any callable with `CallableTeacher`) to plug in another encoder."""

    width: int

    def freeze(self) -> "Teacher":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Teacher":  # teachers stay in eval mode
        return super().train(False)

    def encode(self, images: Tensor) -> TeacherOutput:  # pragma: no cover - interface
        raise NotImplementedError


def _resize(images: Tensor, size: int, patch: int) -> Tensor:
    """size 0: keep the pixels (cropped down to multiples of the patch); N: resize to N x N (bilinear)."""
    if size == 0:
        h, w = images.shape[-2:]
        return images[..., : h - h % patch, : w - w % patch]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class DinoTeacher(Teacher):
    """The geometry teacher: a DinoEncoder (ImageNet mean / std), its final normed patch tokens."""

    def __init__(self, encoder: DinoEncoder, image_size: int = 0) -> None:
        super().__init__()
        self.encoder, self.image_size, self.width = encoder, image_size, encoder.embed_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @torch.no_grad()
    def encode(self, images: Tensor) -> TeacherOutput:
        p = self.encoder.patch_size
        x = _resize(images, self.image_size, p)
        tokens = self.encoder((x - self.mean) / self.std)["x_norm_patchtokens"]
        return TeacherOutput(tokens, (x.shape[-2] // p, x.shape[-1] // p))


class ClipTeacher(Teacher):
    """The semantic teacher: a `transformers.CLIPVisionModel` (CLIP mean / std); patch tokens of hidden state
    `layer` (LLaVA: -2), CLS dropped. Position embeddings are interpolated when the pixels differ from its size."""

    def __init__(self, model: nn.Module, image_size: int = 0, layer: int = -2) -> None:
        super().__init__()
        self.model, self.image_size, self.layer = model, image_size, layer
        self.width = int(model.config.hidden_size)
        self.patch = int(model.config.patch_size)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @torch.no_grad()
    def encode(self, images: Tensor) -> TeacherOutput:
        x = _resize(images, self.image_size, self.patch)
        size = int(self.model.config.image_size)
        out = self.model(pixel_values=(x - self.mean) / self.std, output_hidden_states=True,
                         interpolate_pos_encoding=tuple(x.shape[-2:]) != (size, size))
        tokens = out.hidden_states[self.layer][:, 1:]
        return TeacherOutput(tokens, (x.shape[-2] // self.patch, x.shape[-1] // self.patch))


def _infer_dino(state: dict[str, Tensor], num_heads: int, where: str) -> DinoEncoder:
    if "patch_embed.proj.weight" not in state or "pos_embed" not in state:
        raise CheckpointError(f"{where} has no DINOv2 weights (patch_embed.proj.weight, pos_embed)")
    dim, _, patch, _ = state["patch_embed.proj.weight"].shape
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    heads = num_heads or _HEADS_BY_WIDTH.get(dim, 0)
    if not heads:
        raise ConfigError(f"{where}: cannot infer the number of heads of a {dim}-wide DINOv2; set num_heads")
    regs = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    mlp = state["blocks.0.mlp.fc1.weight"].shape[0] / dim if "blocks.0.mlp.fc1.weight" in state else 4.0
    ls = any(".ls1." in k for k in state)
    enc = DinoEncoder(img_size=grid * patch, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                      mlp_ratio=mlp, num_register_tokens=regs, init_values=1.0 if ls else None)
    missing, unexpected = enc.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{where}: DINOv2 weights do not fit ({len(missing)} missing, {len(unexpected)} "
                              f"unexpected key(s), e.g. {(missing or unexpected)[0]})")
    return enc


def build_teacher(spec: TeacherSpec, device: str = "cpu") -> Teacher:
    """Build a frozen teacher from a recipe entry (see `TeacherSpec`); every failure is one CheckpointError line."""
    path = Path(spec.path)
    if not spec.path or not path.exists():
        raise CheckpointError(f"{spec.kind} teacher not found: {spec.path or '(no path given)'}")
    if spec.kind == "clip":
        from transformers import CLIPVisionModel

        try:
            model = CLIPVisionModel.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        except pickle.UnpicklingError:
            raise CheckpointError(f"refused the CLIP teacher in {path}: {PICKLE_REFUSED}") from None
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot load the CLIP teacher from {path}: {str(exc).splitlines()[0]}") from None
        return ClipTeacher(model, spec.image_size, spec.layer).to(device)
    if spec.kind == "vggt":
        from vidllm_core.convert.vggt import load_official_checkpoint

        sd = load_official_checkpoint(path)
        prefix = "aggregator.patch_embed."
        state = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not state:
            raise CheckpointError(f"{path} has no {prefix}* keys (is it a VGGT checkpoint?)")
        return DinoTeacher(_infer_dino(state, spec.num_heads, str(path)), spec.image_size).to(device)
    if spec.kind == "vidllm":
        from vidllm_core.models.vidllm import VidLLM

        enc = VidLLM.from_pretrained(path).encoder
        return DinoTeacher(enc, spec.image_size).to(device)
    # dino: a safetensors file of DinoEncoder keys (or a dir holding model.safetensors + optional config.json)
    from safetensors.torch import load_file

    file = path / "model.safetensors" if path.is_dir() else path
    try:
        state = load_file(str(file))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot read DINOv2 teacher {file}: {str(exc).splitlines()[0]}") from None
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    heads = spec.num_heads
    cfg_file = file.parent / "config.json"
    if not heads and cfg_file.is_file():
        heads = int(json.loads(cfg_file.read_text()).get("num_heads", 0) or 0)
    return DinoTeacher(_infer_dino(state, heads, str(file)), spec.image_size).to(device)
