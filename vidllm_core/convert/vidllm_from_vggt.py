"""Initialise a Vid-LLM model from an official VGGT checkpoint (paper Sec. 3.4: the encoder, aggregator and heads
start from VGGT; the Cross-Task Adapter starts as an exact identity on the geometry stream).

Key map: `aggregator.patch_embed.*` -> `encoder.*`; every other kept key `X` -> `reconstruction.X`;
`track_head.*` is dropped on purpose. Modules that VGGT does not have (adapter, metric_depth, patch3d, language)
keep their initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from vidllm_core.config import (
    AggregatorConfig,
    CameraHeadConfig,
    DPTHeadConfig,
    EncoderConfig,
    VidLLMConfig,
)
from vidllm_core.convert.vggt import DINOV2_VARIANTS, DROPPED_PREFIXES, KeyReport, check_official_keys
from vidllm_core.errors import CheckpointError

# Vid-LLM modules that have no counterpart in VGGT and are allowed to stay at their initialisation.
VIDLLM_ONLY_PREFIXES: tuple[str, ...] = ("adapter.", "metric_depth.", "patch3d.", "language.")


def vggt_key_to_vidllm(key: str) -> str:
    """Official VGGT state_dict key -> Vid-LLM key."""
    prefix = "aggregator.patch_embed."
    if key.startswith(prefix):
        return "encoder." + key[len(prefix):]
    return "reconstruction." + key


def vidllm_config_from_vggt(model_config: Mapping[str, Any], base: VidLLMConfig | None = None) -> VidLLMConfig:
    """Vid-LLM config whose encoder, aggregator and heads have the sizes of a VGGT `model` config (fixture schema).

    Everything VGGT does not define (adapter, metric depth, 3D patches, language, input) comes from `base`
    (default: the `paper` preset), with the adapter's head count and the encoder's intermediate layers adjusted
    to the VGGT widths when needed.
    """
    base = base or VidLLMConfig.from_name("paper")
    agg = dict(model_config["aggregator"])
    dino = model_config.get("dinov2_patch_embed")
    if not isinstance(dino, Mapping):
        dim, depth, heads = DINOV2_VARIANTS[agg.get("patch_embed", "dinov2_vitl14_reg")]
        dino = {"embed_dim": dim, "depth": depth, "num_heads": heads, "img_size": agg.get("img_size", 518)}
    enc_depth = int(dino["depth"])
    layers = tuple(min(i, enc_depth - 1) for i in base.encoder.intermediate_layers)
    if max(base.encoder.intermediate_layers) >= enc_depth:  # spread 4 taps over a shallower encoder
        layers = tuple(round(i * (enc_depth - 1) / 3) for i in range(4))
    encoder = EncoderConfig(
        img_size=int(dino.get("img_size", 518)), patch_size=int(dino.get("patch_size", 14)),
        embed_dim=int(dino["embed_dim"]), depth=enc_depth, num_heads=int(dino["num_heads"]),
        mlp_ratio=float(dino.get("mlp_ratio", 4.0)), num_register_tokens=int(dino.get("num_register_tokens", 4)),
        init_values=float(dino.get("init_values", 1.0)), layernorm_eps=float(dino.get("layernorm_eps", 1e-6)),
        interpolate_antialias=bool(dino.get("interpolate_antialias", True)),
        interpolate_offset=float(dino.get("interpolate_offset", 0.0)), intermediate_layers=layers,
    )
    aggregator = AggregatorConfig(
        depth=int(agg.get("depth", 24)), num_heads=int(agg.get("num_heads", 16)),
        mlp_ratio=float(agg.get("mlp_ratio", 4.0)), num_register_tokens=int(agg.get("num_register_tokens", 4)),
        qk_norm=bool(agg.get("qk_norm", True)), rope_freq=float(agg.get("rope_freq", 100)),
        init_values=float(agg.get("init_values", 0.01)),
    )
    cam = model_config.get("camera_head") or {}
    camera = CameraHeadConfig(
        trunk_depth=int(cam.get("trunk_depth", 4)), num_heads=int(cam.get("num_heads", 16)),
        mlp_ratio=float(cam.get("mlp_ratio", 4.0)), init_values=float(cam.get("init_values", 0.01)),
        num_iterations=int(cam.get("num_iterations", 4)),
    )

    def dpt(section: Mapping[str, Any] | None) -> DPTHeadConfig | None:
        if section is None:
            return None
        return DPTHeadConfig(
            features=int(section.get("features", 256)),
            out_channels=tuple(int(c) for c in section.get("out_channels", (256, 512, 1024, 1024))),
            intermediate_layer_idx=tuple(int(i) for i in section.get("intermediate_layer_idx", (4, 11, 17, 23))),
            pos_embed=bool(section.get("pos_embed", True)),
        )

    adapter = base.adapter
    if encoder.embed_dim % adapter.num_heads:
        adapter = type(adapter)(**{**adapter.__dict__, "num_heads": encoder.num_heads})
    return base.replace(
        name=f"{base.name}-from-vggt", encoder=encoder, adapter=adapter, aggregator=aggregator, camera_head=camera,
        depth_head=dpt(model_config.get("depth_head")), point_head=dpt(model_config.get("point_head")),
    )


def check_vggt_keys(model: torch.nn.Module, key_shapes: Mapping[str, Sequence[int]]) -> KeyReport:
    """Match official VGGT keys/shapes against a Vid-LLM model (works on the meta device).

    `report.missing` only lists keys that are neither filled by VGGT nor Vid-LLM-only modules.
    """
    key_map = {k: vggt_key_to_vidllm(k) for k in key_shapes}
    report = check_official_keys(model, key_shapes, drop_prefixes=DROPPED_PREFIXES, key_map=key_map)
    report.missing = [k for k in report.missing if not k.startswith(VIDLLM_ONLY_PREFIXES)]
    return report


def init_from_vggt(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> KeyReport:
    """Copy official VGGT weights into a Vid-LLM `model` in place; returns the key report (dropped keys listed).

    Raises CheckpointError when a kept key has no place in the model, a shape differs, or a VGGT-backed module
    of the model is left without weights.
    """
    report = check_vggt_keys(model, {k: tuple(v.shape) for k, v in state_dict.items()})
    if not report.ok:
        raise CheckpointError(f"VGGT checkpoint does not fit this Vid-LLM config: {report.problems()}")
    mapped = {vggt_key_to_vidllm(k): state_dict[k].detach().to(torch.float32) for k in report.matched}
    model.load_state_dict(mapped, strict=False)
    return report
