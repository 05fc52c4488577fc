"""Parity of DinoEncoder loaded through convert.hf_dinov2 with transformers' own DINOv2 models (tiny random configs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidllm_core.convert.hf_dinov2 import load_hf_dinov2
from vidllm_core.errors import CheckpointError
from vidllm_core.models.encoder import DinoEncoder

transformers = pytest.importorskip("transformers")

TOL = 1e-4
SIZES = [(56, 56), (42, 70)]  # native (no interpolation) and non-square (bicubic pos-embed resize)


def _save_tiny(kind: str, directory: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
        layerscale_value=0.5, layer_norm_eps=1e-5,
    )  # fmt: skip
    if kind == "dinov2":
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common))
    else:
        model = transformers.Dinov2WithRegistersModel(
            transformers.Dinov2WithRegistersConfig(num_register_tokens=3, **common)
        )
    with torch.no_grad():  # move every weight off its init so that each mapping matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.eval().save_pretrained(str(directory))
    return model


def _ours(out: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat((out["x_norm_clstoken"][:, None], out["x_norm_regtokens"], out["x_norm_patchtokens"]), dim=1)


@pytest.mark.parametrize("kind", ["dinov2", "dinov2_with_registers"])
def test_hf_dinov2_parity(kind: str, tmp_path: Path) -> None:
    hf = _save_tiny(kind, tmp_path)
    kwargs, state = load_hf_dinov2(tmp_path)
    assert kwargs["num_register_tokens"] == (0 if kind == "dinov2" else 3)
    assert kwargs["layernorm_eps"] == 1e-5
    encoder = DinoEncoder(**kwargs)
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    gen = torch.Generator().manual_seed(1)
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = hf(pixel_values=x).last_hidden_state
            got = _ours(encoder(x))
        err = (got - ref).abs().max().item() / max(1.0, ref.abs().max().item())
        assert err <= TOL, (kind, (h, w), err)
        if (h, w) != (56, 56):  # the interpolation mode matters: the other antialias flag must fail
            encoder.interpolate_antialias = not encoder.interpolate_antialias
            with torch.no_grad():
                wrong = _ours(encoder(x))
            encoder.interpolate_antialias = not encoder.interpolate_antialias
            assert (wrong - ref).abs().max().item() > 1e-3


def test_hf_dinov2_legacy_key_names(tmp_path: Path) -> None:
    """Older checkpoints (e.g. facebook/dinov2-large) use attention.attention.query / attention.output.dense."""
    from safetensors.torch import load_file, save_file

    hf = _save_tiny("dinov2_with_registers", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    renames = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
    }
    legacy = {}
    for k, v in sd.items():
        for new, old in renames.items():
            k = k.replace(new, old)
        legacy[k] = v
    assert any("attention.attention.query" in k for k in legacy)
    save_file(legacy, str(tmp_path / "model.safetensors"))
    kwargs, state = load_hf_dinov2(tmp_path)
    encoder = DinoEncoder(**kwargs)
    encoder.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.allclose(_ours(encoder.eval()(x)), hf(pixel_values=x).last_hidden_state, atol=1e-5)


def test_hf_dinov2_bad_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_hf_dinov2(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json"):
        load_hf_dinov2(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(CheckpointError, match="model_type"):
        load_hf_dinov2(tmp_path)
    (tmp_path / "config.json").write_text(
        '{"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}'
    )
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_hf_dinov2(tmp_path)
