"""The official VGGT code (a local copy the user points to; never vendored) beside ours, at benchmark configs.

Not in the paper: benchmark plumbing for issue 16. `build_official(path, config)` imports `vggt` from a checkout of
github.com/facebookresearch/vggt (it needs `einops` and `huggingface_hub` importable) and assembles the official
`VGGT` from its own Aggregator / CameraHead / DPTHead classes (`track_head = None`), exactly as the tiny_a fixture
was made; `ours_from(official, config)` converts its state_dict with `vidllm_core.convert.vggt.convert_official`
(parameters shared, no copy). Configs use the fixture schema (`model` object of tests' tiny_a config.json).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_DINO_BY_WIDTH = {384: "dinov2_vits14_reg", 768: "dinov2_vitb14_reg", 1024: "dinov2_vitl14_reg"}


def reconstruction_config(
    embed_dim: int, depth: int, num_heads: int, layers: list[int], features: int, out_channels: list[int],
    cam_heads: int, img_size: int,
) -> dict[str, Any]:
    """A fixture-schema `model` config: DINOv2 variant of width `embed_dim`, `depth` frame + `depth` global blocks."""
    dpt = {
        "dim_in": 2 * embed_dim, "patch_size": 14, "features": features, "out_channels": out_channels,
        "intermediate_layer_idx": layers, "pos_embed": True, "feature_only": False, "down_ratio": 1,
        "frames_chunk_size": 8,
    }
    return {
        "aggregator": {
            "img_size": img_size, "patch_size": 14, "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
            "mlp_ratio": 4.0, "num_register_tokens": 4, "qkv_bias": True, "proj_bias": True, "ffn_bias": True,
            "patch_embed": _DINO_BY_WIDTH[embed_dim], "aa_order": ["frame", "global"], "aa_block_size": 1,
            "qk_norm": True, "rope_freq": 100, "init_values": 0.01,
        },
        "camera_head": {
            "dim_in": 2 * embed_dim, "trunk_depth": 4, "pose_encoding_type": "absT_quaR_FoV", "num_heads": cam_heads,
            "mlp_ratio": 4, "init_values": 0.01, "trans_act": "linear", "quat_act": "linear", "fl_act": "relu",
        },
        "point_head": {**dpt, "output_dim": 4, "activation": "inv_log", "conf_activation": "expp1"},
        "depth_head": {**dpt, "output_dim": 2, "activation": "exp", "conf_activation": "expp1"},
        "track_head": None,
    }


# tiny: ViT-S/14-reg, 2 + 2 blocks, DPT 32; medium (issue 16): ViT-S/14-reg, 8 + 8 blocks, DPT 256;
# 1b: the VGGT-1B shapes (ViT-L/14-reg, 24 + 24 blocks, DPT 256).
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": reconstruction_config(384, 2, 6, [0, 1, 1, 1], 32, [16, 32, 64, 64], 6, 112),
    "medium": reconstruction_config(384, 8, 6, [1, 3, 5, 7], 256, [256, 512, 1024, 1024], 16, 224),
    "1b": reconstruction_config(1024, 24, 16, [4, 11, 17, 23], 256, [256, 512, 1024, 1024], 16, 518),
}


def build_official(path: str | Path, config: dict[str, Any]) -> Any:
    """Official `VGGT` (eval, float32, default init under the caller's seed) from the checkout at `path`."""
    root = Path(path).resolve()
    if not (root / "vggt" / "models" / "vggt.py").is_file():
        raise FileNotFoundError(f"no official VGGT checkout at {root} (expected vggt/models/vggt.py)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from torch import nn
    from vggt.heads.camera_head import CameraHead
    from vggt.heads.dpt_head import DPTHead
    from vggt.models.aggregator import Aggregator
    from vggt.models.vggt import VGGT

    agg = {k: v for k, v in config["aggregator"].items()}
    cam = {k: v for k, v in config["camera_head"].items()}
    model = VGGT.__new__(VGGT)
    nn.Module.__init__(model)
    model.aggregator = Aggregator(**agg)
    model.camera_head = CameraHead(**cam)
    for name in ("point_head", "depth_head"):
        head = {k: v for k, v in config[name].items() if k != "frames_chunk_size"}
        setattr(model, name, DPTHead(**head))
    model.track_head = None
    return model.eval()


def ours_from(official: Any, config: dict[str, Any]) -> Any:
    """Our `VGGTReconstruction` holding the official model's parameters (shared storage)."""
    from vidllm_core.convert.vggt import convert_official

    model, _ = convert_official(config, official.state_dict())
    return model
