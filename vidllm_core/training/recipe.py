"""YAML training recipes for the two-stage strategy (Vid-LLM paper Sec. 3.4 and 4.1): typed, frozen dataclasses.

A recipe names a model preset (plus overrides), the data, the optimisation (AdamW 0.9/0.999, wd 0.05, clip 1.0,
warm-up + cosine) and the loss weights (lambda of Eq. 5, the Eq. 8 term weights, alpha / eps of Eq. 9). Parsing is
strict: an unknown key or a wrong type raises `ConfigError` with the dotted key path (the `VidLLMConfig` machinery).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidllm_core.config import PRESETS, VidLLMConfig, _build
from vidllm_core.errors import ConfigError
from vidllm_core.tasks import LANGUAGE_TASKS

STAGES = ("distill", "train")
SAMPLING = ("uniform", "window", "random")
PRECISIONS = ("auto", "fp32", "bf16")
STRATEGIES = ("ddp", "fsdp")
LLM_DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class ModelSpec:
    """The network: a preset name plus nested overrides merged into `VidLLMConfig.to_dict()` (e.g. adapter.variant)."""

    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """ScanNet-format scene folders (`posed_images/<scene>/`) and optional benchmark annotations for Stage 2.

    `scenes`: the folder holding one sub-folder per scene (relative paths resolve against the recipe file).
    `scene_list`: optional text file of scene ids (one per line); empty = every sub-folder.
    `frames`: S frames per sample (paper: 32). `sampling`: uniform (paper, evenly spaced over the whole scene),
    window (S consecutive frames at a random start) or random (S random frames, sorted).
    `image_size`: short side in pixels (0 = the model's input.image_size); `mode`: short_side (paper) | crop | pad.
    `annotations`: {task: file} for any training task of `vidllm_core.tasks` (scanqa, sqa3d, scan2cap, scanrefer,
    multi3drefer, nr3d, sr3d), files as released, joined by scene id; "gt_boxes": a GT-boxes JSON (default: the
    prepared folder's, when `scenes` is one). `task_weights`: {task: weight} (default 1; 0 leaves a task out): each
    scene's `max_language_samples` items are drawn with probability proportional to their task's weight.
    `proposals`: a folder of per-scene proposal files (docs/evaluation.md "Proposals") that trains the proposal
    scorer, or "synthetic" (GT boxes jittered + distractors; synthrooms scenes only); empty = no proposal loss.
    """

    scenes: str = ""
    scene_list: str = ""
    frames: int = 32
    sampling: str = "uniform"
    image_size: int = 0
    mode: str = "short_side"
    annotations: dict = field(default_factory=dict)
    max_language_samples: int = 4
    task_weights: dict = field(default_factory=dict)
    proposals: str = ""


@dataclass(frozen=True)
class ParamGroupSpec:
    """Parameters whose name matches any fnmatch pattern get this learning rate, or are frozen (`freeze: true`)."""

    patterns: tuple[str, ...] = ()
    lr: float = 0.0
    freeze: bool = False


@dataclass(frozen=True)
class OptimSpec:
    """AdamW + linear warm-up + cosine decay (Sec. 4.1; VGGT: lr 5e-5, wd 0.05, 5 % warm-up)."""

    lr: float = 5e-5
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    groups: tuple[ParamGroupSpec, ...] = ()


@dataclass(frozen=True)
class TrainSpec:
    """Loop settings. `steps` are optimiser steps; each sees `batch_size * grad_accum * world_size` sequences."""

    steps: int = 1000
    batch_size: int = 1
    grad_accum: int = 1
    save_every: int = 500
    log_every: int = 1
    seed: int = 0
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    strategy: str = "ddp"  # ddp | fsdp (CUDA only; one FSDP unit per transformer block)
    num_workers: int = 0
    activation_checkpointing: bool = False  # recompute each transformer block in the backward pass
    llm_dtype: str = "fp32"  # fp32 | bf16 (CUDA): the dtype the LLM's weights are held in


@dataclass(frozen=True)
class TeacherSpec:
    """A frozen teacher. `kind`: vggt (the `aggregator.patch_embed.*` DINOv2 of a VGGT checkpoint), vidllm (the
    encoder of a Vid-LLM model dir), dino (a DinoEncoder safetensors + `num_heads`), clip (a local Hugging Face
    CLIPVisionModel dir). `image_size`: 0 = the student's pixels (position embeddings interpolated), N = resize to
    N x N. `layer`: CLIP hidden-state index (-2 as LLaVA)."""

    kind: str = ""
    path: str = ""
    num_heads: int = 0
    image_size: int = 0
    layer: int = -2


@dataclass(frozen=True)
class DistillSpec:
    """Stage 1 (Eq. 5-7): lambda of Eq. 5, the trained modules, the two teachers."""

    lam: float = 1.0
    trainable: tuple[str, ...] = ("encoder.*", "adapter.*")
    geometry_teacher: TeacherSpec = field(default_factory=lambda: TeacherSpec(kind="vggt"))
    semantic_teacher: TeacherSpec = field(default_factory=lambda: TeacherSpec(kind="clip"))


@dataclass(frozen=True)
class Stage2Spec:
    """Stage 2 (Eq. 8-9): per-term weights (VGGT: camera 5, depth 1), alpha / eps of Eq. 9, VGGT loss settings."""

    weights: dict = field(default_factory=lambda: {"camera": 5.0, "depth": 1.0, "point": 1.0, "metric_depth": 1.0,
                                                   "answer_ce": 1.0, "grounding": 1.0})
    md_alpha: float = 0.5
    md_eps: float = 1e-3
    conf_alpha: float = 0.2
    camera_gamma: float = 0.6
    gradient_scales: int = 4
    valid_range: float = 0.98
    min_valid_pixels: int = 100
    language: bool = True  # use the VL loss when the model has a language branch and the data has samples
    tokenizer: str = ""  # tokenizer dir for a language branch built from model.language.llm


@dataclass(frozen=True)
class Recipe:
    """One training run. `init` (Stage 2): a Stage-1 output dir or a model dir; empty = the preset's random init."""

    stage: str = "train"
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    distill: DistillSpec = field(default_factory=DistillSpec)
    stage2: Stage2Spec = field(default_factory=Stage2Spec)
    init: str = ""

    def __post_init__(self) -> None:
        validate_recipe(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_config(self) -> VidLLMConfig:
        """The preset with `model.overrides` merged in (nested keys), validated by `VidLLMConfig.from_dict`."""
        base = VidLLMConfig.from_name(self.model.preset).to_dict()
        return VidLLMConfig.from_dict(_merge(base, self.model.overrides, "model.overrides"))

    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> "Recipe":
        return _build(cls, data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> "Recipe":
        """Read a YAML (or JSON) recipe; relative data / teacher / init paths resolve against the file's folder."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"recipe file not found: {path}") from None
        except (IsADirectoryError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read recipe {path}: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
            raise ConfigError(f"recipe {path} is not valid YAML: {first}") from None
        recipe = cls.from_dict(data if data is not None else {}, source=path.name)
        return recipe.resolve_paths(path.resolve().parent)

    def resolve_paths(self, base: Path) -> "Recipe":
        def res(p: str) -> str:
            return str((base / p).resolve()) if p and not Path(p).is_absolute() else p

        data = dataclasses.replace(
            self.data, scenes=res(self.data.scenes), scene_list=res(self.data.scene_list),
            annotations={k: res(v) if isinstance(v, str) else v for k, v in self.data.annotations.items()},
            proposals=self.data.proposals if self.data.proposals == "synthetic" else res(self.data.proposals),
        )
        distill = dataclasses.replace(
            self.distill,
            geometry_teacher=dataclasses.replace(self.distill.geometry_teacher,
                                                 path=res(self.distill.geometry_teacher.path)),
            semantic_teacher=dataclasses.replace(self.distill.semantic_teacher,
                                                 path=res(self.distill.semantic_teacher.path)),
        )
        stage2 = dataclasses.replace(self.stage2, tokenizer=res(self.stage2.tokenizer))
        return dataclasses.replace(self, data=data, distill=distill, stage2=stage2, init=res(self.init))

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


ANNOTATION_KEYS = (*LANGUAGE_TASKS, "gt_boxes")
TEACHER_KINDS = ("vggt", "vidllm", "dino", "clip")


def validate_recipe(r: Recipe) -> None:
    """Cross-field checks; each failure is one ConfigError line naming the key."""
    if r.stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {r.stage!r}")
    bad = _non_finite(dataclasses.asdict(r))
    if bad:  # YAML reads `.nan` / `.inf` as floats, which every `<= 0` check below lets through
        raise ConfigError(f"{bad} must be a finite number")
    if r.model.preset not in PRESETS:
        raise ConfigError(f"model.preset must be one of {tuple(PRESETS)}, got {r.model.preset!r}")
    d, o, t = r.data, r.optim, r.train
    if d.frames < 1:
        raise ConfigError(f"data.frames must be >= 1, got {d.frames}")
    if d.sampling not in SAMPLING:
        raise ConfigError(f"data.sampling must be one of {SAMPLING}, got {d.sampling!r}")
    if d.mode not in ("short_side", "crop", "pad"):
        raise ConfigError(f"data.mode must be short_side, crop or pad, got {d.mode!r}")
    if d.image_size < 0:
        raise ConfigError(f"data.image_size must be >= 0, got {d.image_size}")
    bad = sorted(set(d.annotations) - set(ANNOTATION_KEYS))
    if bad:
        raise ConfigError(f"data.annotations: unknown key(s) {', '.join(bad)} (known: {', '.join(ANNOTATION_KEYS)})")
    if any(not isinstance(v, str) for v in d.annotations.values()):
        raise ConfigError("data.annotations values must be file paths (strings)")
    for k, v in d.task_weights.items():
        if k not in d.annotations or k == "gt_boxes":
            raise ConfigError(f"data.task_weights.{k}: not a task of data.annotations "
                              f"({', '.join(a for a in d.annotations if a != 'gt_boxes') or 'none'})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"data.task_weights.{k} must be a non-negative number, got {v!r}")
    if o.lr <= 0 or len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError("optim.lr must be > 0 and optim.betas two numbers in [0, 1)")
    if o.weight_decay < 0 or o.grad_clip < 0 or not 0 <= o.warmup_ratio < 1 or not 0 <= o.min_lr_ratio <= 1:
        raise ConfigError("optim: weight_decay, grad_clip >= 0, 0 <= warmup_ratio < 1, 0 <= min_lr_ratio <= 1")
    for i, g in enumerate(o.groups):
        if not g.patterns:
            raise ConfigError(f"optim.groups[{i}].patterns is empty")
        if g.lr < 0:
            raise ConfigError(f"optim.groups[{i}].lr must be >= 0")
    for name in ("steps", "batch_size", "grad_accum", "save_every", "log_every"):
        if getattr(t, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    if t.precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {PRECISIONS}, got {t.precision!r}")
    if t.strategy not in STRATEGIES:
        raise ConfigError(f"train.strategy must be one of {STRATEGIES}, got {t.strategy!r}")
    if t.llm_dtype not in LLM_DTYPES:
        raise ConfigError(f"train.llm_dtype must be one of {LLM_DTYPES}, got {t.llm_dtype!r}")
    for name, spec in (("geometry_teacher", r.distill.geometry_teacher), ("semantic_teacher", r.distill.semantic_teacher)):
        if spec.kind not in TEACHER_KINDS:
            raise ConfigError(f"distill.{name}.kind must be one of {TEACHER_KINDS}, got {spec.kind!r}")
        if spec.image_size < 0 or spec.num_heads < 0:
            raise ConfigError(f"distill.{name}: image_size and num_heads must be >= 0")
    if r.distill.lam < 0:
        raise ConfigError(f"distill.lam must be >= 0, got {r.distill.lam}")
    from vidllm_core.losses import STAGE2_TERMS

    unknown = sorted(set(r.stage2.weights) - set(STAGE2_TERMS))
    if unknown:
        raise ConfigError(f"stage2.weights: unknown term(s) {', '.join(unknown)} (known: {', '.join(STAGE2_TERMS)})")
    for k, v in r.stage2.weights.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"stage2.weights.{k} must be a non-negative number, got {v!r}")
    if r.stage2.md_alpha < 0 or r.stage2.md_eps < 0:
        raise ConfigError("stage2.md_alpha and stage2.md_eps must be >= 0")


def _non_finite(obj: Any, where: str = "") -> str | None:
    """Dotted key of the first NaN / infinite number in a nested recipe dict, else None."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "value"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}" if where and isinstance(key, str) else
                            f"{where}[{key}]" if where else str(key))
        if found:
            return found
    return None


def _merge(base: dict[str, Any], overrides: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if key not in out:
            raise ConfigError(f"{where}: unknown key {key}")
        if isinstance(value, dict) and isinstance(out[key], dict) and key != "llm":
            out[key] = _merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out
