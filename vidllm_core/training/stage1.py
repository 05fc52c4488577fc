"""Stage 1, dual-teacher distillation (Vid-LLM Sec. 3.4, Eq. 5-7): the DINOv2 encoder and the Cross-Task Adapter
learn from a frozen geometry teacher (VGGT's DINOv2) and a frozen semantic teacher (CLIP), through linear
projections of T'_geom / T'_lang to each teacher's width.

L_sc (Eq. 7) needs one width per side. When the two teachers have the same width (the paper: 1024 and 1024) the
projected student tokens and the teacher tokens are used (`distillation_loss`). Otherwise the student side uses the
unprojected T'_geom / T'_lang (shared width C) and the wider teacher is mapped to the narrower width by a fixed
seeded Gaussian projection (inner products preserved in expectation). Teacher grids are bilinearly resampled to the
student grid (`match_token_grid`) for L_geo and L_sc; L_lang pools, so it needs no matching.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidllm_core.losses import (distillation_loss, geometry_feature_loss, match_token_grid, semantic_feature_loss,
                                structural_consistency_loss)
from vidllm_core.models.vidllm import VidLLM
from vidllm_core.training.common import (CarriedWeights, DistInfo, Run, build_optimizer, build_param_groups,
                                         build_scheduler, check_device_support, check_same_config,
                                         latest_checkpoint, prepare_out_dir, read_checkpoint, restore,
                                         seed_everything, wrap_distributed)
from vidllm_core.training.recipe import Recipe
from vidllm_core.training.teachers import Teacher, build_teacher


class DistillModule(nn.Module):
    """Student (the Vid-LLM's encoder + adapter) with its two projections; forward(batch) -> (L_distill, parts).

    The teachers are held outside the module tree (no state_dict entries, no DDP sync): they are frozen.
    """

    def __init__(self, model: VidLLM, geometry_teacher: Teacher, semantic_teacher: Teacher, lam: float,
                 seed: int = 0) -> None:
        super().__init__()
        self.model = model
        dim = model.config.encoder.embed_dim
        self.proj_geom = nn.Linear(dim, geometry_teacher.width)
        self.proj_lang = nn.Linear(dim, semantic_teacher.width)
        self._teachers = (geometry_teacher, semantic_teacher)
        self.lam = float(lam)
        wg, wl = geometry_teacher.width, semantic_teacher.width
        self.same_width = wg == wl
        if not self.same_width:
            g = torch.Generator().manual_seed(seed)
            wide, narrow = max(wg, wl), min(wg, wl)
            self.register_buffer("teacher_map", torch.randn(wide, narrow, generator=g) / math.sqrt(narrow),
                                 persistent=False)
            self.map_geometry = wg > wl

    def student_tokens(self, images: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """images [B*S, 3, H, W] in [0, 1] -> (T'_geom, T'_lang) [B*S, N, C] and the token grid."""
        m = self.model
        p = m.config.encoder.patch_size
        x = (images - m.image_mean) / m.image_std
        base = m.encoder(x)["x_norm_patchtokens"]
        geom, lang = m.adapter(base)
        return geom, lang, (images.shape[-2] // p, images.shape[-1] // p)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        images = batch["images"].flatten(0, 1)  # [B*S, 3, H, W]: every frame is one distillation item
        geom, lang, grid = self.student_tokens(images)
        geo_t, sem_t = self._teachers
        tg, tl = geo_t.encode(images), sem_t.encode(images)
        pg, pl = self.proj_geom(geom), self.proj_lang(lang)
        if self.same_width:
            return distillation_loss(pg, pl, tg.tokens, tl.tokens, self.lam, student_hw=grid,
                                     teacher_geom_hw=tg.grid, teacher_lang_hw=tl.grid)
        tea_g = match_token_grid(tg.tokens, tg.grid, grid)
        tea_l = match_token_grid(tl.tokens, tl.grid, grid)
        geo = geometry_feature_loss(pg, tea_g)
        sem = semantic_feature_loss(pl, tl.tokens)
        if self.map_geometry:
            tea_g = tea_g @ self.teacher_map
        else:
            tea_l = tea_l @ self.teacher_map
        sc = structural_consistency_loss(geom, lang, tea_g, tea_l)
        total = geo + sem + self.lam * sc
        return total, {"geo_feat": geo.detach(), "lang_feat": sem.detach(), "sc": sc.detach()}


def _prefixed(patterns: tuple[str, ...]) -> list[str]:
    return [p if p.startswith("proj_") else f"model.{p}" for p in patterns]


def _groups(recipe: Recipe) -> tuple:
    from dataclasses import replace

    return tuple(replace(g, patterns=tuple(_prefixed(g.patterns))) for g in recipe.optim.groups)


def setup(recipe: Recipe, out_dir: str | Path, dist: DistInfo, resume: bool = False,
          teachers: tuple[Teacher, Teacher] | None = None) -> Run:
    """Build model, teachers, data, optimiser and schedule for Stage 1; restore the latest checkpoint on `resume`.

    `teachers` overrides the recipe's teacher entries (any `Teacher`)."""
    from vidllm_core.training.stage2 import build_dataset, to_device

    from vidllm_core.training.stage2 import adopt_init_llm

    check_device_support(recipe.train, dist.device)
    out_dir = Path(out_dir)
    recipe = with_init_teachers(recipe)
    config = adopt_init_llm(recipe.model_config(), recipe.init)  # the LLM of --init passes through untouched
    ckpt = latest_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        check_same_config(read_checkpoint(ckpt)[2], config, f"--resume checkpoint {ckpt}")
    dataset = build_dataset(recipe, config, language=False, geometry=False)
    if dist.is_main:
        prepare_out_dir(out_dir, resume)
    seed_everything(recipe.train.seed)
    model = VidLLM(config)
    carry, extra = None, {}
    if recipe.init:
        from vidllm_core.training.stage2 import load_init

        load_init(model, recipe.init, config)
        carry = CarriedWeights(Path(recipe.init) / "model.safetensors", "language.")
        if not carry.keys():
            carry = None
        elif (Path(recipe.init) / "tokenizer").is_dir():  # OUT stays a model directory with the LLM's tokenizer
            import shutil

            if dist.is_main:
                shutil.copytree(Path(recipe.init) / "tokenizer", out_dir / "tokenizer", dirs_exist_ok=True)
            extra["tokenizer"] = out_dir / "tokenizer"
    if teachers is None:
        teachers = (build_teacher(recipe.distill.geometry_teacher, dist.device),
                    build_teacher(recipe.distill.semantic_teacher, dist.device))
    module = DistillModule(model, teachers[0], teachers[1], recipe.distill.lam, recipe.train.seed).to(dist.device)
    trainable = _prefixed(recipe.distill.trainable) + ["proj_*"]
    build_param_groups(module, recipe.optim.lr, recipe.optim.weight_decay, _groups(recipe), trainable)  # freezes
    wrapped = wrap_distributed(module, dist, recipe.train.strategy,
                               activation_checkpointing=recipe.train.activation_checkpointing)
    optimizer = build_optimizer_named(wrapped, recipe)
    run = Run(module=wrapped, optimizer=optimizer, scheduler=build_scheduler(optimizer, recipe), dataset=dataset,
              collate=_collate(), recipe=recipe, out_dir=out_dir, dist=dist, config_json=config.to_json(),
              extra_files=extra, to_device=lambda b: to_device(b, dist.device), carry=carry)
    if ckpt is not None:
        restore(run, ckpt)
    return run


def with_init_teachers(recipe: Recipe) -> Recipe:
    """Fill a teacher whose recipe `path` is empty from the `teachers.json` that `vidllm init --vggt/--clip` wrote
    into the `--init` directory (the recipe then records the path it used)."""
    import dataclasses
    import json

    from vidllm_core.errors import ConfigError

    d = recipe.distill
    specs = {"geometry_teacher": d.geometry_teacher, "semantic_teacher": d.semantic_teacher}
    if all(s.path for s in specs.values()):
        return recipe
    recorded: dict = {}
    source = Path(recipe.init) / TEACHERS_FILE if recipe.init else None
    if source is not None and source.is_file():
        recorded = json.loads(source.read_text(encoding="utf-8"))
    for name, spec in specs.items():
        if spec.path:
            continue
        entry = recorded.get(name) or {}
        if entry.get("kind") != spec.kind or not entry.get("path"):
            where = f"--init {recipe.init} records none" if recipe.init else "no --init directory records one"
            raise ConfigError(f"distill.{name}.path is not set and {where} (vidllm init --vggt V --clip C)")
        specs[name] = dataclasses.replace(spec, path=str(entry["path"]))
    return recipe.replace(distill=dataclasses.replace(d, **specs))


TEACHERS_FILE = "teachers.json"


def record_teachers(model_dir: str | Path, vggt: str | Path | None, clip: str | Path | None) -> dict:
    """Write `model_dir/teachers.json`: the Stage-1 teachers of the paper (Sec. 3.4: VGGT's DINOv2 for geometry,
    a CLIP vision tower for semantics) as absolute paths, so `vidllm distill --init model_dir` finds them."""
    from vidllm_core.errors import CheckpointError
    from vidllm_core.io import write_json_atomic

    out: dict = {}
    if vggt is not None:
        out["geometry_teacher"] = {"kind": "vggt", "path": str(Path(vggt).resolve())}
    if clip is not None:
        clip = Path(clip)
        if not (clip / "config.json").is_file():
            raise CheckpointError(f"--clip {clip} is not a Hugging Face CLIP directory (no config.json)")
        out["semantic_teacher"] = {"kind": "clip", "path": str(clip.resolve())}
    if out:
        write_json_atomic(Path(model_dir) / TEACHERS_FILE, out)
    return out


def build_optimizer_named(module: nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW over the still-trainable parameters of a (possibly wrapped) module with the recipe's groups."""
    from dataclasses import replace

    return build_optimizer(module, replace(recipe, optim=replace(recipe.optim, groups=_groups(recipe))))


def _collate():  # noqa: ANN202
    from vidllm_core.training.data import collate

    return collate
