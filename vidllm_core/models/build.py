"""Assemble a Vid-LLM model from a preset and optional public checkpoints (paper Sec. 3.4 initialisation:
encoder, aggregator and heads from VGGT; or the encoder from a Hugging Face DINOv2; the rest seeded random)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from vidllm_core.config import VidLLMConfig
from vidllm_core.errors import CheckpointError
from vidllm_core.models.vidllm import VidLLM, load_weights

_ENCODER_SIZE_FIELDS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "num_register_tokens")


def build_model(
    config: VidLLMConfig,
    vggt: str | Path | None = None,
    dinov2: str | Path | None = None,
    seed: int = 0,
) -> tuple[VidLLM, list[str]]:
    """Build `config` with seeded random weights, then overwrite what the given checkpoints provide.

    Args:
        config: the model configuration (a preset or a custom one).
        vggt: an official VGGT checkpoint (`model.pt` / `.safetensors` / a directory holding one).
        dinov2: a Hugging Face `Dinov2Model` / `Dinov2WithRegistersModel` directory for the shared encoder
            (its pos-embed interpolation and LayerNorm eps are adopted into the config).

    Returns:
        (model in eval mode, notes: one human-readable line per loaded source).
    """
    notes: list[str] = []
    dino_state = None
    if dinov2 is not None:
        from vidllm_core.convert.hf_dinov2 import load_hf_dinov2

        kwargs, dino_state = load_hf_dinov2(dinov2)
        wanted = {f: getattr(config.encoder, f) for f in _ENCODER_SIZE_FIELDS}
        got = {f: kwargs[f] for f in _ENCODER_SIZE_FIELDS}
        if wanted != got:
            diff = ", ".join(f"{f} {got[f]} (preset {wanted[f]})" for f in wanted if wanted[f] != got[f])
            raise CheckpointError(f"DINOv2 in {dinov2} does not fit preset {config.name!r}: {diff}")
        encoder = dataclasses.replace(
            config.encoder, layernorm_eps=kwargs["layernorm_eps"],
            interpolate_antialias=kwargs["interpolate_antialias"], interpolate_offset=kwargs["interpolate_offset"],
        )
        config = config.replace(encoder=encoder)
    torch.manual_seed(seed)
    model = VidLLM(config)
    if vggt is not None:
        from vidllm_core.convert.vggt import load_official_checkpoint
        from vidllm_core.convert.vidllm_from_vggt import init_from_vggt

        report = init_from_vggt(model, load_official_checkpoint(vggt))
        notes.append(f"VGGT {vggt}: {len(report.matched)} tensors loaded, {len(report.dropped)} track_head tensors "
                     "dropped on purpose")
    if dino_state is not None:
        load_weights(model.encoder, dino_state, source=str(dinov2))
        notes.append(f"DINOv2 {dinov2}: {len(dino_state)} encoder tensors loaded")
    return model.eval(), notes
