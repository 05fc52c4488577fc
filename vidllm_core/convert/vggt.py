"""Build a :class:`VGGTReconstruction` from an official VGGT config + state_dict (VGGT, Wang et al. 2025; checkpoint VGGT-1B).

The official key names are kept as-is (no renaming); only ``track_head.*`` is dropped on purpose (no tracker here).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidllm_core.errors import CheckpointError, ConfigError
from vidllm_core.heads.camera import CameraHead
from vidllm_core.heads.dpt import DPTHead
from vidllm_core.models.aggregator import Aggregator
from vidllm_core.models.encoder import DinoEncoder
from vidllm_core.models.reconstruction import VGGTReconstruction

log = logging.getLogger(__name__)

DROPPED_PREFIXES: tuple[str, ...] = ("track_head.",)

# Official DINOv2 string options of Aggregator.__build_patch_embed__: (embed_dim, depth, num_heads).
DINOV2_VARIANTS: dict[str, tuple[int, int, int]] = {
    "dinov2_vits14_reg": (384, 12, 6),
    "dinov2_vitb14_reg": (768, 12, 12),
    "dinov2_vitl14_reg": (1024, 24, 16),
}

_DPT_1B: dict[str, Any] = {
    "dim_in": 2048,
    "patch_size": 14,
    "features": 256,
    "out_channels": [256, 512, 1024, 1024],
    "intermediate_layer_idx": [4, 11, 17, 23],
    "pos_embed": True,
    "feature_only": False,
    "down_ratio": 1,
    "frames_chunk_size": 8,
}

VGGT_1B_MODEL_CONFIG: dict[str, Any] = {
    "aggregator": {
        "img_size": 518,
        "patch_size": 14,
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "mlp_ratio": 4.0,
        "num_register_tokens": 4,
        "qkv_bias": True,
        "proj_bias": True,
        "ffn_bias": True,
        "patch_embed": "dinov2_vitl14_reg",
        "aa_order": ["frame", "global"],
        "aa_block_size": 1,
        "qk_norm": True,
        "rope_freq": 100,
        "init_values": 0.01,
    },
    "dinov2_patch_embed": {
        "img_size": 518,
        "patch_size": 14,
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "mlp_ratio": 4,
        "num_register_tokens": 4,
        "init_values": 1.0,
        "interpolate_antialias": True,
        "interpolate_offset": 0.0,
        "block_chunks": 0,
        "ffn_layer": "mlp",
        "qkv_bias": True,
        "proj_bias": True,
        "ffn_bias": True,
        "drop_path_rate": 0.0,
        "qk_norm": False,
        "layernorm_eps": 1e-06,
    },
    "camera_head": {
        "dim_in": 2048,
        "trunk_depth": 4,
        "pose_encoding_type": "absT_quaR_FoV",
        "num_heads": 16,
        "mlp_ratio": 4,
        "init_values": 0.01,
        "trans_act": "linear",
        "quat_act": "linear",
        "fl_act": "relu",
        "num_iterations": 4,
    },
    "point_head": {**_DPT_1B, "output_dim": 4, "activation": "inv_log", "conf_activation": "expp1"},
    "depth_head": {**_DPT_1B, "output_dim": 2, "activation": "exp", "conf_activation": "expp1"},
    # The official 1B model has a TrackHead; it is not built here and its 394 keys are dropped on purpose.
    "track_head": None,
}


def _section(config: Mapping[str, Any], name: str, allowed: set[str]) -> dict[str, Any] | None:
    value = config.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"model config '{name}' must be an object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"model config '{name}' has unknown keys: {', '.join(unknown)}")
    return dict(value)


_AGG_KEYS = {
    "img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "num_register_tokens", "qkv_bias",
    "proj_bias", "ffn_bias", "patch_embed", "aa_order", "aa_block_size", "qk_norm", "rope_freq", "init_values",
}  # fmt: skip
_DINO_KEYS = {
    "img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "num_register_tokens", "init_values",
    "interpolate_antialias", "interpolate_offset", "block_chunks", "ffn_layer", "qkv_bias", "proj_bias", "ffn_bias",
    "drop_path_rate", "qk_norm", "layernorm_eps", "block_fn",
}  # fmt: skip
_CAM_KEYS = {
    "dim_in", "trunk_depth", "pose_encoding_type", "num_heads", "mlp_ratio", "init_values", "trans_act", "quat_act",
    "fl_act", "num_iterations",
}  # fmt: skip
_DPT_KEYS = {
    "dim_in", "patch_size", "features", "out_channels", "intermediate_layer_idx", "pos_embed", "feature_only",
    "down_ratio", "frames_chunk_size", "output_dim", "activation", "conf_activation",
}  # fmt: skip


def build_encoder(agg: Mapping[str, Any], dino: Mapping[str, Any] | None) -> DinoEncoder:
    """DINOv2 patch embed from the ``dinov2_patch_embed`` section, or from the aggregator's variant name."""
    if dino is None:
        name = agg.get("patch_embed", "dinov2_vitl14_reg")
        if name not in DINOV2_VARIANTS:
            raise ConfigError(f"unsupported patch_embed {name!r} (supported: {', '.join(DINOV2_VARIANTS)})")
        dim, depth, heads = DINOV2_VARIANTS[name]
        dino = {"embed_dim": dim, "depth": depth, "num_heads": heads, "img_size": agg.get("img_size", 518)}
    if dino.get("ffn_layer", "mlp") != "mlp":
        raise ConfigError(f"unsupported DINOv2 ffn_layer {dino['ffn_layer']!r} (only 'mlp')")
    if dino.get("qk_norm", False):
        raise ConfigError("DINOv2 patch embed with qk_norm is not supported")
    return DinoEncoder(
        img_size=int(dino.get("img_size", 518)),
        patch_size=int(dino.get("patch_size", 14)),
        embed_dim=int(dino["embed_dim"]),
        depth=int(dino["depth"]),
        num_heads=int(dino["num_heads"]),
        mlp_ratio=float(dino.get("mlp_ratio", 4.0)),
        num_register_tokens=int(dino.get("num_register_tokens", 4)),
        init_values=dino.get("init_values", 1.0),
        qkv_bias=bool(dino.get("qkv_bias", True)),
        proj_bias=bool(dino.get("proj_bias", True)),
        ffn_bias=bool(dino.get("ffn_bias", True)),
        layernorm_eps=float(dino.get("layernorm_eps", 1e-6)),
        interpolate_antialias=bool(dino.get("interpolate_antialias", True)),
        interpolate_offset=float(dino.get("interpolate_offset", 0.0)),
    )


def _dpt(cfg: Mapping[str, Any]) -> DPTHead:
    return DPTHead(
        dim_in=int(cfg["dim_in"]),
        patch_size=int(cfg.get("patch_size", 14)),
        output_dim=int(cfg.get("output_dim", 4)),
        activation=str(cfg.get("activation", "inv_log")),
        conf_activation=str(cfg.get("conf_activation", "expp1")),
        features=int(cfg.get("features", 256)),
        out_channels=list(cfg.get("out_channels", (256, 512, 1024, 1024))),
        intermediate_layer_idx=list(cfg.get("intermediate_layer_idx", (4, 11, 17, 23))),
        pos_embed=bool(cfg.get("pos_embed", True)),
        feature_only=bool(cfg.get("feature_only", False)),
        down_ratio=int(cfg.get("down_ratio", 1)),
        frames_chunk_size=cfg.get("frames_chunk_size", 8),
    )


def build_model(config: Mapping[str, Any]) -> VGGTReconstruction:
    """Randomly initialised :class:`VGGTReconstruction` from a ``model`` config (fixture schema).

    Sections: ``aggregator`` (required), ``dinov2_patch_embed`` (optional: else derived from
    ``aggregator.patch_embed``), ``camera_head`` / ``point_head`` / ``depth_head`` (null: not built),
    ``track_head`` (ignored: never built). Raises :class:`ConfigError` on unknown keys or unsupported values.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("model config must be an object")
    unknown = sorted(set(config) - {"aggregator", "dinov2_patch_embed", "camera_head", "point_head", "depth_head", "track_head"})
    if unknown:
        raise ConfigError(f"model config has unknown sections: {', '.join(unknown)}")
    agg = _section(config, "aggregator", _AGG_KEYS)
    if agg is None:
        raise ConfigError("model config needs an 'aggregator' section")
    dino = _section(config, "dinov2_patch_embed", _DINO_KEYS)
    cam = _section(config, "camera_head", _CAM_KEYS)
    point = _section(config, "point_head", _DPT_KEYS)
    depth = _section(config, "depth_head", _DPT_KEYS)
    try:
        encoder = build_encoder(agg, dino)
        aggregator = Aggregator(
            embed_dim=int(agg.get("embed_dim", 1024)),
            depth=int(agg.get("depth", 24)),
            num_heads=int(agg.get("num_heads", 16)),
            mlp_ratio=float(agg.get("mlp_ratio", 4.0)),
            num_register_tokens=int(agg.get("num_register_tokens", 4)),
            qkv_bias=bool(agg.get("qkv_bias", True)),
            proj_bias=bool(agg.get("proj_bias", True)),
            ffn_bias=bool(agg.get("ffn_bias", True)),
            patch_size=int(agg.get("patch_size", 14)),
            aa_order=list(agg.get("aa_order", ("frame", "global"))),
            aa_block_size=int(agg.get("aa_block_size", 1)),
            qk_norm=bool(agg.get("qk_norm", True)),
            rope_freq=float(agg.get("rope_freq", 100)),
            init_values=float(agg.get("init_values", 0.01)),
            patch_embed=encoder,
        )
        if encoder.embed_dim != aggregator.embed_dim:
            raise ConfigError(
                f"DINOv2 width {encoder.embed_dim} differs from the aggregator embed_dim {aggregator.embed_dim}"
            )
        camera_head = None
        if cam is not None:
            if cam.get("pose_encoding_type", "absT_quaR_FoV") != "absT_quaR_FoV":
                raise ConfigError(f"unsupported pose_encoding_type {cam['pose_encoding_type']!r}")
            camera_head = CameraHead(
                dim_in=int(cam.get("dim_in", 2048)),
                trunk_depth=int(cam.get("trunk_depth", 4)),
                num_heads=int(cam.get("num_heads", 16)),
                mlp_ratio=float(cam.get("mlp_ratio", 4.0)),
                init_values=float(cam.get("init_values", 0.01)),
                trans_act=str(cam.get("trans_act", "linear")),
                quat_act=str(cam.get("quat_act", "linear")),
                fl_act=str(cam.get("fl_act", "relu")),
                num_iterations=int(cam.get("num_iterations", 4)),
            )
        return VGGTReconstruction(
            aggregator,
            camera_head=camera_head,
            point_head=_dpt(point) if point is not None else None,
            depth_head=_dpt(depth) if depth is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid VGGT model config: {exc}") from exc


@dataclass
class KeyReport:
    """Outcome of matching a checkpoint's keys and shapes against a model's state_dict."""

    matched: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every non-dropped key matched by name and shape and nothing is missing."""
        return not (self.unexpected or self.missing or self.mismatched)

    def problems(self) -> str:
        """One line describing what is wrong (empty when ``ok``)."""

        def names(keys: Sequence[str]) -> str:
            head = ", ".join(keys[:5])
            return head + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        parts = []
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys: {names(self.unexpected)}")
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys: {names(self.missing)}")
        if self.mismatched:
            shown = [f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:3]]
            parts.append(f"{len(self.mismatched)} shape mismatches: " + "; ".join(shown))
        return "; ".join(parts)


def check_official_keys(
    model: nn.Module,
    key_shapes: Mapping[str, Sequence[int]],
    drop_prefixes: Sequence[str] = DROPPED_PREFIXES,
    key_map: Mapping[str, str] | None = None,
) -> KeyReport:
    """Compare checkpoint ``key -> shape`` with ``model.state_dict()`` (works on meta-device models).

    Args:
        model: the module the checkpoint should load into.
        key_shapes: checkpoint key -> shape (e.g. from :func:`read_key_shapes_tsv` or a state_dict).
        drop_prefixes: checkpoint key prefixes dropped on purpose (reported in ``dropped``).
        key_map: optional checkpoint-key -> model-key renaming (identity for keys not in it).
    """
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    report = KeyReport()
    seen: set[str] = set()
    for key, shape in key_shapes.items():
        if any(key.startswith(p) for p in drop_prefixes):
            report.dropped.append(key)
            continue
        name = key_map.get(key, key) if key_map else key
        if name not in target:
            report.unexpected.append(key)
            continue
        seen.add(name)
        if tuple(shape) != target[name]:
            report.mismatched.append((key, tuple(shape), target[name]))
        else:
            report.matched.append(key)
    report.missing = [k for k in target if k not in seen]
    return report


def read_key_shapes_tsv(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Read a ``key<TAB>[d0, d1, ...]<TAB>dtype<TAB>numel`` listing (header line first) into ``key -> shape``."""
    out: dict[str, tuple[int, ...]] = {}
    lines = Path(path).read_text().splitlines()
    for line in lines[1:]:
        if not line.strip():
            continue
        key, shape = line.split("\t")[:2]
        dims = shape.strip().strip("[]")
        out[key] = tuple(int(d) for d in dims.split(",") if d.strip())
    return out


def convert_official(
    config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> tuple[VGGTReconstruction, KeyReport]:
    """Like :func:`build_from_official` but also returns the :class:`KeyReport` (with the dropped keys)."""
    with torch.device("meta"):
        model = build_model(config)
    report = check_official_keys(model, {k: tuple(v.shape) for k, v in state_dict.items()})
    if not report.ok:
        raise CheckpointError(f"checkpoint does not match the VGGT config: {report.problems()}")
    params = {k: state_dict[k].detach().to(device="cpu", dtype=torch.float32) for k in report.matched}
    model.load_state_dict(params, strict=True, assign=True)
    if report.dropped:
        log.info("dropped %d checkpoint keys on purpose (%s)", len(report.dropped), ", ".join(DROPPED_PREFIXES))
    return model.eval(), report


def build_from_official(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Build the model of ``config`` (a fixture ``model`` object) and load official VGGT weights into it.

    Returns a float32 CPU :class:`VGGTReconstruction` in eval mode. ``track_head.*`` keys are dropped on purpose
    (logged at INFO; :func:`convert_official` returns the list); any other unexpected or missing key, or a shape
    mismatch, raises :class:`CheckpointError` naming the keys. Parameters may share memory with ``state_dict``.
    """
    model, _ = convert_official(config, state_dict)
    return model


def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official VGGT checkpoint: ``model.pt`` (``torch.load(weights_only=True)``) or ``.safetensors``.

    ``path`` may be a directory holding ``model.safetensors`` or ``model.pt``. Raises :class:`CheckpointError`
    (one line) when the file is missing or unreadable or is not a flat ``name -> tensor`` mapping.
    """
    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "model.pt"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise CheckpointError(f"no model.safetensors or model.pt in {path}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {p}: {first}") from exc
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {p} is not a state_dict (name -> tensor mapping)")
    return dict(obj)


def vggt_1b_model_config() -> dict[str, Any]:
    """A deep copy of :data:`VGGT_1B_MODEL_CONFIG` (safe to edit)."""
    return copy.deepcopy(VGGT_1B_MODEL_CONFIG)
