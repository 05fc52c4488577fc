"""Stage 2, joint optimisation (Vid-LLM Sec. 3.4, Eq. 8-9): L_joint = L_recon-task + L_VL-task + L_MD over all
modules. Reconstruction terms follow VGGT (camera, depth, point with GT normalisation; VGGT.md sec. 8), L_MD is
Eq. 9 on metric GT depth, L_VL (answer cross-entropy, grounding) runs when the model has a language branch and the
data has language samples. The one-way gradient (VL loss never reaches the reconstruction model) is built into
`VidLLM.patch_tokens_3d`, which reads detached geometry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidllm_core.config import VidLLMConfig
from vidllm_core.errors import CheckpointError, ConfigError
from vidllm_core.geometry.pose_encoding import extri_intri_to_pose_encoding
from vidllm_core.geometry.unproject import unproject_depth_to_world
from vidllm_core.losses import camera_loss, depth_loss, metric_depth_loss, normalize_gt_scene, point_loss, stage2_loss
from vidllm_core.models.vidllm import VidLLM
from vidllm_core.training.common import (DistInfo, Run, build_param_groups, build_scheduler, check_same_config,
                                         latest_checkpoint, prepare_out_dir, read_checkpoint, restore,
                                         seed_everything, wrap_distributed)
from vidllm_core.training.recipe import Recipe, Stage2Spec

NOTES_FILE = "run_notes.json"  # what the run skipped or started from random, recorded beside its checkpoints
DEFAULT_WEIGHTS = {"camera": 5.0, "depth": 1.0, "point": 1.0, "metric_depth": 1.0, "answer_ce": 1.0, "grounding": 1.0}


class JointModule(nn.Module):
    """The Vid-LLM (with `model.language` when it has a language branch); forward(batch) -> (L_joint, parts)."""

    def __init__(self, model: VidLLM, spec: Stage2Spec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in spec.weights.items()}}

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        s = self.spec
        images, depth, valid = batch["images"], batch["depth"], batch["valid"]
        extr, intr = batch["extrinsics"], batch["intrinsics"]
        h, w = images.shape[-2:]
        out = self.model(images)
        world = unproject_depth_to_world(depth, extr, intr)
        gt = normalize_gt_scene(extr, depth, world, valid)
        gt_pose = extri_intri_to_pose_encoding(gt.extrinsics, intr, (h, w))
        valid_seq = valid[:, 0].flatten(1).sum(1) > s.min_valid_pixels
        terms: dict[str, Tensor] = {}
        parts: dict[str, Tensor] = {}
        terms["camera"], sub = camera_loss(out["pose_enc_list"], gt_pose, gamma=s.camera_gamma, valid_seq=valid_seq)
        parts.update({f"camera_{k}": v for k, v in sub.items()})
        common = dict(alpha=s.conf_alpha, gradient_scales=s.gradient_scales, valid_range=s.valid_range,
                      min_valid=s.min_valid_pixels)
        terms["depth"], sub = depth_loss(out["depth"], out["depth_conf"], gt.depth, valid, **common)
        parts.update({f"depth_{k}": v for k, v in sub.items()})
        if "world_points" in out:
            terms["point"], sub = point_loss(out["world_points"], out["world_points_conf"], gt.world_points, valid,
                                             **common)
            parts.update({f"point_{k}": v for k, v in sub.items()})
        if "metric_depth" in out:
            terms["metric_depth"] = metric_depth_loss(out["metric_depth"].flatten(0, 1), depth.flatten(0, 1),
                                                      valid.flatten(0, 1), s.md_alpha, s.md_eps)
        language = getattr(self.model, "language", None)
        if language is not None and any(batch.get("prompts", [])):
            vl_terms, vl_parts = self.vl_terms(language, out, batch)
            terms.update(vl_terms)
            parts.update(vl_parts)
        total, logged = stage2_loss(terms, self.weights)
        return total, {**logged, **parts}

    def vl_terms(self, language: nn.Module, out: dict[str, Any], batch: dict[str, Any]
                 ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Pool each item's 3D patch tokens (built on detached geometry) and score its prompts. Token positions
        move into the item's box frame (`batch["box_frame"]`, where its GT boxes and proposals are)."""
        tokens, xyz, masks, prompts, boxes, props = [], [], [], [], [], []
        item_props = batch.get("proposals") or [[None] * len(p) for p in batch["prompts"]]
        for b, (item_prompts, item_boxes) in enumerate(zip(batch["prompts"], batch["boxes"])):
            if not item_prompts:
                continue
            geometry = self.model.geometry(out, b)
            pooled = self.model.scene_tokens(out["tokens_lang"][b], geometry)   # the inference path too
            frame = batch["box_frame"][b].to(pooled.xyz.dtype)
            xyz_b = pooled.xyz[0] @ frame[:3, :3].T + frame[:3, 3]
            for p, box, prop in zip(item_prompts, item_boxes, item_props[b]):
                tokens.append(pooled.tokens[0]), xyz.append(xyz_b), masks.append(pooled.mask[0])
                prompts.append(p), boxes.append(box), props.append(prop)
        m = max(t.shape[0] for t in tokens)

        def pad(x: Tensor) -> Tensor:
            return torch.cat([x, x.new_zeros(m - x.shape[0], *x.shape[1:])]) if x.shape[0] < m else x

        proposals = None
        if any(p is not None for p in props):
            proposals = [p if p is not None else xyz[0].new_zeros(0, 6) for p in props]
        return language.loss_terms(torch.stack([pad(t) for t in tokens]), torch.stack([pad(x) for x in xyz]),
                                   torch.stack([pad(k) for k in masks]), prompts, gt_boxes=boxes,
                                   proposals=proposals)


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, Tensor):
            out[k] = v.to(device)
        elif k in ("boxes", "proposals"):
            out[k] = [[None if x is None else x.to(device) for x in item] for item in v]
        else:
            out[k] = v
    return out


def build_dataset(recipe: Recipe, config: VidLLMConfig, language: bool = True, geometry: bool = True) -> Any:
    """The recipe's scene clips (and language samples joined by scene id when `language`)."""
    from vidllm_core.data.benchmarks import read_scene_list
    from vidllm_core.errors import DataError
    from vidllm_core.training.data import SceneClips
    from vidllm_core.training.language_samples import load_language_samples

    d = recipe.data
    if not d.scenes:
        raise ConfigError("data.scenes is not set (the folder holding one ScanNet-format folder per scene)")
    if not Path(d.scenes).is_dir():
        raise DataError(f"data.scenes folder not found: {d.scenes}")
    ids = read_scene_list(d.scene_list) if d.scene_list else None
    for key, path in d.annotations.items():
        if not Path(path).is_file():
            raise DataError(f"data.annotations.{key} file not found: {path}")
    if d.mode != config.input.mode:   # one owner of the preprocessing mode: the model's input config
        raise ConfigError(f"data.mode {d.mode!r} differs from the model's input.mode {config.input.mode!r}: the "
                          "trained model would be run with another preprocessing; set model.overrides.input.mode")
    size = d.image_size or config.input.image_size
    clips = SceneClips(d.scenes, ids, frames=d.frames, sampling=d.sampling, image_size=size, mode=config.input.mode,
                       patch_size=config.encoder.patch_size, seed=recipe.train.seed,
                       max_language_samples=d.max_language_samples, load_geometry=geometry,
                       task_weights=d.task_weights)
    if language and d.annotations:
        clips.language, clips.language_notes = load_language_samples(
            d.annotations, [s.scene_id for s in clips.scenes], gt_boxes=_gt_boxes(recipe),
            max_question_tokens=config.language.max_question_tokens if config.language else 256)
        if d.proposals:
            from vidllm_core.training.proposals import build_train_proposals

            dirs = [Path(d.scenes) / s.scene_id for s in clips.scenes]
            clips.proposals, notes = build_train_proposals(d.proposals, dirs, _gt_boxes(recipe))
            clips.language_notes = [*clips.language_notes, *notes]
    return clips


def _gt_boxes(recipe: Recipe) -> Any:
    """GT boxes of `data.annotations.gt_boxes`, else of the prepared folder `data.scenes` (`vidllm prepare`)."""
    from vidllm_core.data.benchmarks import load_gt_boxes_file
    from vidllm_core.data.prepared import is_prepared, load_prepared

    d = recipe.data
    if "gt_boxes" in d.annotations:
        return load_gt_boxes_file(d.annotations["gt_boxes"])
    if is_prepared(d.scenes):
        return load_prepared(d.scenes).gt_boxes()
    return None


def check_llm_for_annotations(recipe: Recipe, config: VidLLMConfig) -> None:
    """Refuse language annotations for a model without an LLM (they would silently train nothing)."""
    cfg = config.language
    tasks = sorted(k for k in recipe.data.annotations if k != "gt_boxes")
    if recipe.stage2.language and tasks and (cfg is None or not cfg.llm):
        raise ConfigError(f"data.annotations holds language tasks ({', '.join(tasks)}) but the model has no LLM: "
                          "--init a model directory that holds one (vidllm init --llm DIR) or set "
                          "stage2.language: false")


def attach_language(model: VidLLM, recipe: Recipe, tokenizer_dir: str | Path | None) -> bool:
    """Give the model its language branch (`model.language`) when the config describes an LLM, the recipe wants
    the VL loss and the data has annotations. Returns whether it was attached."""
    cfg = model.config.language
    tasks = [k for k in recipe.data.annotations if k != "gt_boxes"]
    if not (recipe.stage2.language and cfg is not None and cfg.llm and tasks):
        return False
    from vidllm_core.language.tokenizer import load_tokenizer

    if tokenizer_dir is None:
        raise ConfigError("the model has a language branch: set stage2.tokenizer (a tokenizer directory) or --init "
                          "from a model directory holding tokenizer/")
    tokenizer, _ = load_tokenizer(tokenizer_dir)
    model.attach_language(tokenizer)
    return True


def adopt_init_llm(config: VidLLMConfig, init: str | Path | None) -> VidLLMConfig:
    """Take the LLM description (`language.llm`) from the `--init` model directory.

    The LLM is fixed where the model directory was made (`vidllm init`: its vocabulary comes from the tokenizer, or it
    is a user's pretrained LLM), so the recipe's preset only has to agree on everything else.
    """
    import dataclasses
    import json

    path = Path(init) / "config.json" if init else None
    if path is None or not path.is_file() or config.language is None:
        return config
    try:
        llm = (json.loads(path.read_text(encoding="utf-8")).get("language") or {}).get("llm")
    except (json.JSONDecodeError, AttributeError):
        return config  # load_init reports an unreadable config with one line
    if not isinstance(llm, dict) or not llm:
        return config
    return config.replace(language=dataclasses.replace(config.language, llm=llm))


def load_init(model: VidLLM, path: str | Path, config: VidLLMConfig, random_llm_ok: bool = False) -> str:
    """Weights of a Stage-1 output dir or a model dir (config.json + model.safetensors) of the same config.

    A model with a language branch whose init holds no LLM weights is refused, unless `random_llm_ok` (a preset
    that defines its own from-scratch LLM: tiny, demo); then the returned note says the LLM starts random."""
    from safetensors.torch import load_file

    from vidllm_core.models.vidllm import load_weights

    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise CheckpointError(f"--init: {path} is not a model directory (config.json + model.safetensors)")
    check_same_config((path / "config.json").read_text(encoding="utf-8"), config, f"--init {path}")
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"--init: cannot read {path / 'model.safetensors'}: {exc}") from None
    has_language = any(k.startswith("language.") for k in state)
    if hasattr(model, "language") and not has_language:
        missing = load_weights(model, state, str(path), strict=False)
        bad = [k for k in missing if not k.startswith("language.")]
        if bad:
            raise CheckpointError(f"--init: weights from {path} miss {len(bad)} key(s), e.g. {bad[0]}")
        if not random_llm_ok:
            raise CheckpointError(f"--init: {path} holds no LLM weights (language.*), so the LLM would start random; "
                                  "init from a model directory written by `vidllm init --llm DIR` (or its Stage-1 "
                                  "output)")
        return f"--init {path} holds no LLM weights: the {config.name} preset's LLM starts from random weights"
    if has_language and not hasattr(model, "language"):
        state = {k: v for k, v in state.items() if not k.startswith("language.")}
    load_weights(model, state, str(path))
    return ""


def _prefixed_groups(recipe: Recipe) -> Recipe:
    from dataclasses import replace

    groups = tuple(replace(g, patterns=tuple(f"model.{p}" for p in g.patterns)) for g in recipe.optim.groups)
    return replace(recipe, optim=replace(recipe.optim, groups=groups))


def setup(recipe: Recipe, out_dir: str | Path, dist: DistInfo, resume: bool = False) -> Run:
    """Build model (from `recipe.init` when set), data, optimiser, schedule; restore the latest checkpoint on resume."""
    from vidllm_core.training.common import build_optimizer
    from vidllm_core.training.data import collate

    from vidllm_core.training.common import check_device_support

    check_device_support(recipe.train, dist.device)
    out_dir = Path(out_dir)
    config = adopt_init_llm(recipe.model_config(), recipe.init)
    check_llm_for_annotations(recipe, config)
    ckpt = latest_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        check_same_config(read_checkpoint(ckpt)[2], config, f"--resume checkpoint {ckpt}")
    dataset = build_dataset(recipe, config)
    if dist.is_main:
        prepare_out_dir(out_dir, resume)
    seed_everything(recipe.train.seed)
    model = VidLLM(config)
    notes = {"data": list(getattr(dataset, "language_notes", []))} if getattr(dataset, "language_notes", []) else {}
    tok_dir: Path | None = Path(recipe.stage2.tokenizer) if recipe.stage2.tokenizer else None
    if tok_dir is None and recipe.init and (Path(recipe.init) / "tokenizer").is_dir():
        tok_dir = Path(recipe.init) / "tokenizer"
    extra: dict[str, Path] = {}
    if attach_language(model, recipe, tok_dir):
        if dist.is_main:
            model.language.tokenizer.save_pretrained(str(out_dir / "tokenizer"))
        extra["tokenizer"] = out_dir / "tokenizer"
    if recipe.init:
        preset = recipe.model_config().language
        note = load_init(model, recipe.init, config, random_llm_ok=preset is not None and bool(preset.llm))
        if note:
            import warnings

            warnings.warn(note, stacklevel=2)
            notes["init"] = [note]
    if dist.is_main and notes:
        from vidllm_core.io import write_json_atomic

        write_json_atomic(out_dir / NOTES_FILE, notes)
    if recipe.train.llm_dtype == "bf16" and hasattr(model, "language"):
        model.language.llm.to(torch.bfloat16)  # the LLM's weights held in bf16 (CUDA; checked above)
    module = JointModule(model, recipe.stage2).to(dist.device)
    r = _prefixed_groups(recipe)
    build_param_groups(module, r.optim.lr, r.optim.weight_decay, r.optim.groups)  # applies `freeze` groups
    wrapped = wrap_distributed(module, dist, recipe.train.strategy, find_unused=True,
                               activation_checkpointing=recipe.train.activation_checkpointing)
    optimizer = build_optimizer(wrapped, r)
    run = Run(module=wrapped, optimizer=optimizer, scheduler=build_scheduler(optimizer, recipe), dataset=dataset,
              collate=collate, recipe=recipe, out_dir=out_dir, dist=dist, config_json=config.to_json(),
              extra_files=extra, to_device=lambda b: to_device(b, dist.device))
    if ckpt is not None:
        restore(run, ckpt)
    return run
