"""Model configuration (paper Sec. 3 and 4.1): one frozen dataclass per component, composed into `VidLLMConfig`.

Named presets: `tiny` (every test), `demo` (trainable on 2 CPU cores), `paper` (DINOv2-L/14-reg + VGGT-1B sizes).
Checkpoints are `config.json` + `model.safetensors`; `config.json` is `VidLLMConfig.to_dict()`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vidllm_core.errors import ConfigError

MODEL_TYPE = "vidllm"  # config.json's `model_type` (the key Hugging Face tools dispatch on)


@dataclass(frozen=True)
class EncoderConfig:
    """Shared DINOv2 ViT encoder (Sec. 3.1). Attribute names follow DINOv2 / VGGT so checkpoints load as-is."""

    img_size: int = 518  # resolution of the learned position-embedding grid (interpolated to the input)
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    init_values: float = 1.0  # LayerScale init (VGGT passes 1.0 to its DINOv2)
    layernorm_eps: float = 1e-6
    interpolate_antialias: bool = True
    interpolate_offset: float = 0.0
    # Encoder blocks whose (normed) outputs feed the Metric Depth Model's DPT-style decoder (Sec. 3.2).
    intermediate_layers: tuple[int, ...] = (4, 11, 17, 23)


@dataclass(frozen=True)
class AdapterConfig:
    """Cross-Task Adapter (Sec. 3.1, Eq. 1-2); `variant` selects the Table 6 ablations."""

    variant: str = "bridge"  # none | concat_sa | cross_attn | bridge
    num_bridge_tokens: int = 16
    num_heads: int = 16
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class AggregatorConfig:
    """Global-Frame alternating-attention backbone with camera and register tokens (Sec. 3.2, after VGGT)."""

    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qk_norm: bool = True
    rope_freq: float = 100.0
    init_values: float = 0.01


@dataclass(frozen=True)
class CameraHeadConfig:
    """Camera head: pose encoding absT_quaR_FoV with iterative refinement (after VGGT)."""

    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    num_iterations: int = 4


@dataclass(frozen=True)
class DPTHeadConfig:
    """DPT head over aggregator layers (depth + confidence, or world points + confidence)."""

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)
    pos_embed: bool = True


@dataclass(frozen=True)
class MetricDepthConfig:
    """Metric Depth Model: DPT-style decoder on encoder features + ordinal depth bins (Sec. 3.2)."""

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    num_bins: int = 64
    min_depth: float = 0.1
    max_depth: float = 20.0


@dataclass(frozen=True)
class AlignmentConfig:
    """Real-scale alignment (Sec. 3.2): per-frame weighted least squares, median over sampled frames."""

    enabled: bool = True
    num_frames: int = 16
    seed: int = 0


@dataclass(frozen=True)
class Patch3DConfig:
    """3D patch construction (Sec. 3.3, Eq. 3-4): MLP positional embedding of back-projected patches."""

    hidden_dim: int = 256


@dataclass(frozen=True)
class LanguageConfig:
    """3D vision-language branch (Sec. 3.3): token budget, and the causal LLM (any HF AutoModelForCausalLM).

    `llm` holds the Hugging Face config dict of the LLM (its weights live in model.safetensors under `llm.`, its
    tokenizer in the model directory's `tokenizer/`); empty for a preset means "built by `vidllm init`".
    """

    llm: dict = field(default_factory=dict)  # no vocab_size needed: `vidllm init` sets it from the tokenizer
    token_budget: int = 1024  # 3D tokens given to the LLM after geometry-aware pooling
    voxel_size: float = 0.2  # metres, for voxel pooling of 3D patch tokens
    num_grounding_queries: int = 16
    max_question_tokens: int = 256
    grounding_dim: int = 128  # width of the grounding head (heads/grounding.py)
    pool_reduction: str = "coarsen"  # coarsen | fps (language/pooling.py)
    system_prompt: str | None = None  # system turn for LLMs with a chat template
    ground_threshold: float = 0.5  # objectness score kept by multi-target grounding


@dataclass(frozen=True)
class InputConfig:
    """Frame sampling and preprocessing (Sec. 4.1): 32 frames, short side 518, crop to multiples of 14."""

    num_frames: int = 32
    image_size: int = 518
    mode: str = "short_side"  # short_side (paper) | crop | pad (official VGGT load_and_preprocess_images)


@dataclass(frozen=True)
class VidLLMConfig:
    """The whole model. `metric_depth=None` is the "w/o MD" ablation; `point_head=None` drops the point map.

    `model_type` is always "vidllm": Hugging Face tools (AutoConfig) need the key to read a model directory's
    config.json. `trained` is False in a directory written by `vidllm init` (random or only partly pretrained
    weights, never trained on the Vid-LLM tasks); ask / caption / ground warn on such a model. Configs written
    before these keys existed load as "vidllm" and trained.
    """

    model_type: str = MODEL_TYPE
    name: str = "custom"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    depth_head: DPTHeadConfig = field(default_factory=DPTHeadConfig)
    point_head: DPTHeadConfig | None = field(default_factory=DPTHeadConfig)
    metric_depth: MetricDepthConfig | None = field(default_factory=MetricDepthConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    patch3d: Patch3DConfig = field(default_factory=Patch3DConfig)
    language: LanguageConfig | None = field(default_factory=LanguageConfig)
    input: InputConfig = field(default_factory=InputConfig)
    trained: bool = True

    def __post_init__(self) -> None:
        validate(self)

    # ---- serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def architecture(self) -> dict[str, Any]:
        """`to_dict()` without `trained`: what two checkpoints must share to hold weights of the same model."""
        return {k: v for k, v in self.to_dict().items() if k != "trained"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VidLLMConfig":
        return _build(cls, data, "config")

    @classmethod
    def from_file(cls, path: str | Path) -> "VidLLMConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_name(cls, name: str) -> "VidLLMConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[name]()

    def replace(self, **changes: Any) -> "VidLLMConfig":
        return dataclasses.replace(self, **changes)


ADAPTER_VARIANTS = ("none", "concat_sa", "cross_attn", "bridge")
POOL_REDUCTIONS = ("coarsen", "fps")
INPUT_MODES = ("short_side", "crop", "pad")


def validate(cfg: VidLLMConfig) -> None:
    """Cross-field checks that a single dataclass cannot express."""
    if cfg.model_type != MODEL_TYPE:
        raise ConfigError(f"model_type is {cfg.model_type!r}: this config.json describes another kind of model "
                          f"(a vidllm model directory has model_type {MODEL_TYPE!r})")
    enc = cfg.encoder
    if cfg.adapter.variant not in ADAPTER_VARIANTS:
        raise ConfigError(f"adapter.variant must be one of {ADAPTER_VARIANTS}, got {cfg.adapter.variant!r}")
    if cfg.input.mode not in INPUT_MODES:
        raise ConfigError(f"input.mode must be one of {INPUT_MODES}, got {cfg.input.mode!r}")
    if cfg.input.image_size % enc.patch_size:
        raise ConfigError(f"input.image_size {cfg.input.image_size} must be a multiple of patch {enc.patch_size}")
    for name, heads in (("encoder", enc.num_heads), ("adapter", cfg.adapter.num_heads),
                        ("aggregator", cfg.aggregator.num_heads)):
        if enc.embed_dim % heads:
            raise ConfigError(f"{name}.num_heads {heads} does not divide embed_dim {enc.embed_dim}")
    if (2 * enc.embed_dim) % cfg.camera_head.num_heads:
        raise ConfigError("camera_head.num_heads must divide 2 * embed_dim")
    if len(enc.intermediate_layers) != 4 or max(enc.intermediate_layers) >= enc.depth:
        raise ConfigError(f"encoder.intermediate_layers must be 4 indices < depth {enc.depth}")
    for head_name in ("depth_head", "point_head"):
        head = getattr(cfg, head_name)
        if head is not None and max(head.intermediate_layer_idx) >= cfg.aggregator.depth:
            raise ConfigError(f"{head_name}.intermediate_layer_idx must be < aggregator.depth")
    if cfg.metric_depth is not None and not 0 < cfg.metric_depth.min_depth < cfg.metric_depth.max_depth:
        raise ConfigError("metric_depth needs 0 < min_depth < max_depth")
    lang = cfg.language
    if lang is not None:
        if lang.pool_reduction not in POOL_REDUCTIONS:
            raise ConfigError(f"language.pool_reduction must be one of {POOL_REDUCTIONS}, got {lang.pool_reduction!r}")
        if lang.token_budget < 1 or lang.voxel_size <= 0 or lang.max_question_tokens < 1:
            raise ConfigError("language needs token_budget >= 1, voxel_size > 0 and max_question_tokens >= 1")
        if not 0.0 <= lang.ground_threshold <= 1.0:
            raise ConfigError(f"language.ground_threshold must be in [0, 1], got {lang.ground_threshold}")
        if lang.llm and not isinstance(lang.llm.get("model_type"), str):
            raise ConfigError("language.llm must be a Hugging Face config dict with a 'model_type'")


# ---- typed construction from plain dicts (JSON / YAML) ------------------------------------------------------
def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        item_types = typing.get_args(tp)
        item_type = item_types[0] if item_types else Any
        return tuple(_coerce(item_type, v, where) for v in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is dict or typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# ---- presets ------------------------------------------------------------------------------------------------
#: Random-init LLMs of the tiny / demo presets (Hugging Face Qwen2 config dicts; vocab_size comes from the tokenizer
#: `vidllm init` builds). The paper preset has none: `vidllm init --llm DIR` brings a pretrained one.
TINY_LLM: dict[str, Any] = {
    "model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 128, "max_position_embeddings": 4096, "tie_word_embeddings": True,
}
DEMO_LLM: dict[str, Any] = {
    "model_type": "qwen2", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 384, "max_position_embeddings": 2048, "tie_word_embeddings": True,
}

def tiny() -> VidLLMConfig:
    """Every test: 2 frames forward in well under a second on CPU."""
    return VidLLMConfig(
        name="tiny",
        encoder=EncoderConfig(img_size=56, embed_dim=32, depth=2, num_heads=2, intermediate_layers=(0, 0, 1, 1)),
        adapter=AdapterConfig(num_bridge_tokens=4, num_heads=2),
        aggregator=AggregatorConfig(depth=2, num_heads=2),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=2, num_iterations=2),
        depth_head=DPTHeadConfig(features=16, out_channels=(8, 16, 32, 32), intermediate_layer_idx=(0, 0, 1, 1)),
        point_head=None,
        metric_depth=MetricDepthConfig(features=16, out_channels=(8, 16, 32, 32), num_bins=8, max_depth=10.0),
        patch3d=Patch3DConfig(hidden_dim=32),
        language=LanguageConfig(llm=dict(TINY_LLM), token_budget=64, voxel_size=0.2, num_grounding_queries=8,
                                max_question_tokens=64),
        input=InputConfig(num_frames=4, image_size=56),
    )


def demo() -> VidLLMConfig:
    """The shipped demo model: sized to train on a shared 2-core CPU in well under an hour (docs/DESIGN.md,
    "Presets"): 96-d encoder, 3 + 3 aggregator blocks, 8 frames at short side 84 (synthrooms 224x168 -> 84x112)."""
    return VidLLMConfig(
        name="demo",
        encoder=EncoderConfig(img_size=84, embed_dim=96, depth=4, num_heads=4, intermediate_layers=(0, 1, 2, 3)),
        adapter=AdapterConfig(num_bridge_tokens=16, num_heads=4),
        aggregator=AggregatorConfig(depth=3, num_heads=4),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=4, num_iterations=2),
        depth_head=DPTHeadConfig(features=32, out_channels=(16, 32, 64, 64), intermediate_layer_idx=(0, 1, 2, 2)),
        point_head=None,
        metric_depth=MetricDepthConfig(features=32, out_channels=(16, 32, 64, 64), num_bins=32, max_depth=12.0),
        patch3d=Patch3DConfig(hidden_dim=96),
        language=LanguageConfig(llm=dict(DEMO_LLM), token_budget=128, voxel_size=0.25, num_grounding_queries=8,
                                max_question_tokens=64),
        input=InputConfig(num_frames=8, image_size=84),
    )


def paper() -> VidLLMConfig:
    """Sec. 4.1: DINOv2-L/14-reg (24 layers, 1024-d, 16 heads), K=16 bridge tokens, VGGT-1B aggregator and heads."""
    return VidLLMConfig(name="paper")


PRESETS = {"tiny": tiny, "demo": demo, "paper": paper}
