"""Map a Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel`` directory onto :class:`DinoEncoder` (Vid-LLM Sec. 4.1: DINOv2-L init).

Handles both the current (``q_proj/k_proj/v_proj/o_proj``) and the older (``attention.attention.query``,
``attention.output.dense``) attention key names; q, k, v are concatenated into the fused ``qkv`` Linear.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from vidllm_core.errors import CheckpointError

_MODEL_TYPES = {"dinov2": False, "dinov2_with_registers": True}  # model_type -> has registers
_PREFIXES = ("dinov2.", "dinov2_with_registers.", "model.", "backbone.")
_IGNORED_PREFIXES = ("classifier.", "pooler.")


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {directory}")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return cfg


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    st = directory / "model.safetensors"
    try:
        if st.is_file():
            from safetensors.torch import load_file

            return load_file(str(st), device="cpu")
        index = directory / "model.safetensors.index.json"
        if index.is_file():
            from safetensors.torch import load_file

            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            out: dict[str, torch.Tensor] = {}
            for name in files:
                out.update(load_file(str(directory / name), device="cpu"))
            return out
        pt = directory / "pytorch_model.bin"
        if pt.is_file():
            return torch.load(str(pt), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one line
        raise CheckpointError(f"cannot read weights in {directory}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    raise CheckpointError(f"no model.safetensors (or pytorch_model.bin) in {directory}")


def encoder_kwargs_from_hf_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """:class:`DinoEncoder` constructor arguments for a transformers DINOv2 config dict."""
    model_type = cfg.get("model_type")
    if model_type not in _MODEL_TYPES:
        raise CheckpointError(f"unsupported model_type {model_type!r} (expected dinov2 or dinov2_with_registers)")
    if cfg.get("use_swiglu_ffn", False):
        raise CheckpointError("DINOv2 with a SwiGLU FFN (giant) is not supported")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"unsupported DINOv2 hidden_act {cfg.get('hidden_act')!r} (only exact 'gelu')")
    if cfg.get("num_channels", 3) != 3:
        raise CheckpointError("only 3-channel DINOv2 models are supported")
    image_size, patch_size = cfg.get("image_size", 518), cfg.get("patch_size", 14)
    if not isinstance(image_size, int) or not isinstance(patch_size, int):
        raise CheckpointError("only square image_size / patch_size DINOv2 configs are supported")
    has_registers = _MODEL_TYPES[model_type]
    return {
        "img_size": image_size,
        "patch_size": patch_size,
        "embed_dim": int(cfg["hidden_size"]),
        "depth": int(cfg["num_hidden_layers"]),
        "num_heads": int(cfg["num_attention_heads"]),
        "mlp_ratio": float(cfg.get("mlp_ratio", 4)),
        "num_register_tokens": int(cfg.get("num_register_tokens", 4)) if has_registers else 0,
        "init_values": 1.0,  # the learned LayerScale values come with the weights
        "qkv_bias": bool(cfg.get("qkv_bias", True)),
        "proj_bias": True,
        "ffn_bias": True,
        "layernorm_eps": float(cfg.get("layer_norm_eps", 1e-6)),
        # transformers resizes the pos-embed with size=(h, w); antialias only in the with-registers model.
        "interpolate_antialias": has_registers,
        "interpolate_offset": 0.0,
    }


_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_LAYER_MAP = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "attention.o_proj.weight": "attn.proj.weight",
    "attention.o_proj.bias": "attn.proj.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
}
_QKV = {
    "attention.q_proj": "q",
    "attention.k_proj": "k",
    "attention.v_proj": "v",
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
}
_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}


def convert_hf_dinov2_state_dict(hf: dict[str, torch.Tensor], embed_dim: int) -> dict[str, torch.Tensor]:
    """Rename a transformers DINOv2 state_dict to :class:`DinoEncoder` keys (q, k, v fused into ``qkv``)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, value in hf.items():
        name = key
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if name.startswith(_IGNORED_PREFIXES):
            continue
        if name in _TOP:
            out[_TOP[name]] = value
            continue
        m = _LAYER.match(name)
        if m:
            idx, rest = int(m.group(1)), m.group(2)
            if rest in _LAYER_MAP:
                out[f"blocks.{idx}.{_LAYER_MAP[rest]}"] = value
                continue
            base, _, kind = rest.rpartition(".")
            if base in _QKV and kind in ("weight", "bias"):
                qkv.setdefault((idx, kind), {})[_QKV[base]] = value
                continue
        unknown.append(key)
    if unknown:
        raise CheckpointError(f"unrecognised DINOv2 keys: {', '.join(unknown[:5])}" + (" ..." if len(unknown) > 5 else ""))
    for (idx, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"layer {idx} attention {kind}: need q, k and v, got {sorted(parts)}")
        out[f"blocks.{idx}.attn.qkv.{kind}"] = torch.cat((parts["q"], parts["k"], parts["v"]), dim=0)
    if "mask_token" not in out:
        out["mask_token"] = torch.zeros(1, embed_dim)
    return out


def load_hf_dinov2(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a transformers ``Dinov2Model`` / ``Dinov2WithRegistersModel`` save directory.

    Returns:
        ``(encoder_kwargs, state_dict)``: ``DinoEncoder(**encoder_kwargs).load_state_dict(state_dict, strict=True)``
        reproduces ``last_hidden_state`` of the transformers model on the same normalised pixels.

    Raises:
        CheckpointError: missing/unreadable files, unsupported config or unrecognised keys (one line).
    """
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"DINOv2 directory not found: {directory}")
    kwargs = encoder_kwargs_from_hf_config(_read_config(d))
    state = convert_hf_dinov2_state_dict(_read_weights(d), kwargs["embed_dim"])
    return kwargs, state
