"""Assemble a Vid-LLM model from a preset and optional public checkpoints (paper Sec. 3.4 initialisation:
encoder, aggregator and heads from VGGT; or the encoder from a Hugging Face DINOv2; the LLM from a local Hugging Face
directory (Sec. 3.3) or, for tiny / demo, a random one with a tokenizer trained offline; the rest seeded random)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from vidllm_core.config import VidLLMConfig
from vidllm_core.errors import CheckpointError
from vidllm_core.models.vidllm import VidLLM, load_weights

#: Vocabulary of the offline tokenizer of the tiny / demo presets (256 bytes + 5 reserved tokens included).
TOKENIZER_VOCAB = {"tiny": 512, "demo": 2048}
_RELATIONS = ("closest to", "farthest from", "on", "next to", "left", "right", "behind", "in front of", "in the corner",
              "against the wall", "near", "above", "below", "between", "facing", "standing", "sitting")
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "yes", "no",
          "meters", "what", "where", "which", "how many", "is there", "color", "the", "a", "it", "is", "of", "in",
          "room", "scene", "object", "wooden", "small", "large", "tall", "short", "I am", "my")


def builtin_corpus() -> list[str]:
    """Training text of the offline tokenizer: the task prompt templates + the synthrooms vocabulary."""
    from vidllm_core.language import prompts as P

    texts = [P.QA_SUFFIX, P.CAPTION_INSTRUCTION, P.SCENE_INSTRUCTION, P.GROUNDING_INSTRUCTION, P.MULTI_TARGET_NOTE,
             "The related object is located at [1.25, -0.50, 2.00] with size [0.60, 0.60, 0.90].",
             P.PLAIN_USER + P.PLAIN_ASSISTANT, " ".join(_RELATIONS), " ".join(_WORDS), "0123456789.,-[]?!"]
    try:
        from vidllm_core.data.synth.catalog import CATEGORIES, COLOURS
    except ImportError:  # the synthrooms generator is optional for the model library
        categories, colours = {}, {}
    else:
        categories, colours = CATEGORIES, COLOURS
    for cat in categories.values():
        texts.append(f"the {cat.name} {cat.plural} How many {cat.plural} are in the room? a {cat.name}.")
        for colour in colours:
            texts.append(f"What color is the {cat.name}? {colour}. It is a {colour} {cat.name}. "
                         f"the {colour} {cat.name} next to the {cat.name}")
    return texts


def build_tokenizer_for(config: VidLLMConfig, out_dir: str | Path | None = None) -> object:
    """The offline byte-level BPE tokenizer of a random-LLM preset (built from `builtin_corpus`)."""
    from vidllm_core.language.tokenizer import build_tokenizer

    return build_tokenizer(builtin_corpus() * 2, vocab_size=TOKENIZER_VOCAB.get(config.name, 1024), out_dir=out_dir)


def _with_llm(config: VidLLMConfig, llm_dict: dict) -> VidLLMConfig:
    return config.replace(language=dataclasses.replace(config.language, llm=llm_dict))


_ENCODER_SIZE_FIELDS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "num_register_tokens")


def build_model(
    config: VidLLMConfig,
    vggt: str | Path | None = None,
    dinov2: str | Path | None = None,
    seed: int = 0,
    llm: str | Path | None = None,
    language: bool = True,
) -> tuple[VidLLM, list[str]]:
    """Build `config` with seeded random weights, then overwrite what the given checkpoints provide.

    Args:
        config: the model configuration (a preset or a custom one).
        vggt: an official VGGT checkpoint (`model.pt` / `.safetensors` / a directory holding one).
        dinov2: a Hugging Face `Dinov2Model` / `Dinov2WithRegistersModel` directory for the shared encoder
            (its pos-embed interpolation and LayerNorm eps are adopted into the config).
        llm: a local Hugging Face directory with any `AutoModelForCausalLM` and its tokenizer (never downloaded,
            never remote code); `<scene>` / `<ground>` (and a pad token) are added and the embeddings resized. Its
            config dict is stored in `config.language.llm`.
        language: without `llm`, attach a random LLM of `config.language.llm` (tiny / demo) with a tokenizer
            trained offline on `builtin_corpus`; False (or a preset without an LLM) builds a vision-only model.

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
    if llm is not None:
        from vidllm_core.language.fusion import SceneLanguageModel

        if config.language is None:
            raise CheckpointError(f"preset {config.name!r} has no language section for --llm")
        slm = SceneLanguageModel.from_llm_dir(llm, config.language, config.encoder.embed_dim)
        model.config = config = _with_llm(config, slm.llm_config_dict())
        model.attach_language(slm.tokenizer, llm=slm.llm)
        notes.append(f"LLM {llm}: {type(slm.llm).__name__}, {sum(p.numel() for p in slm.llm.parameters()) / 1e6:.1f} M "
                     f"parameters, vocabulary {len(slm.tokenizer)}")
    elif language and config.language is not None and config.language.llm:
        tokenizer = build_tokenizer_for(config)
        llm_dict = dict(config.language.llm)
        llm_dict.setdefault("vocab_size", len(tokenizer))
        model.config = config = _with_llm(config, llm_dict)
        model.attach_language(tokenizer)
        notes.append(f"LLM: random {llm_dict['model_type']} (hidden {llm_dict.get('hidden_size')}), tokenizer "
                     f"trained offline ({len(tokenizer)} tokens)")
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
