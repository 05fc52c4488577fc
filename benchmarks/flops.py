"""Compute of the joint model vs the concatenation pipelines of paper Table 5, counted (not timed) at any preset.

Every network component runs on the meta device under `torch.utils.flop_counter.FlopCounterMode`, so the paper
preset at 32 frames x 518 px is counted in seconds on a laptop without allocating its weights. The pipelines:

* joint (Vid-LLM): shared encoder + Cross-Task Adapter + aggregator and heads + metric-depth decoder + 3D patches
  + LLM;
* concatenation (VGGT + 3D LLM): a reconstruction model (encoder + aggregator and heads, no metric depth) + the
  3D LLM's own vision encoder over the same frames + 3D patches + LLM;
* concatenation-dagger (VGGT + 3D LLM with metric-scale alignment, the variant whose accuracy matches Vid-LLM's):
  the above + a standalone metric-depth model (its own encoder + the same decoder).

Every component of a pipeline is the same size as its joint counterpart (the issue's "equal component sizes").
The LLM is counted the same way at presets with a random LLM (tiny, demo); for the paper preset, which brings its
own LLM, it is estimated as 2 * params * tokens (prefill of the token budget + prompt, then the new tokens).

Usage: .venv/bin/python benchmarks/flops.py [--presets demo,paper] [--frames 8,16,32] [--llm-params 7e9]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

PROMPT_TOKENS = 64
NEW_TOKENS = 8


def _count(fn) -> tuple[float, object]:
    counter = FlopCounterMode(display=False)
    with counter:
        result = fn()
    return float(counter.get_total_flops()), result


def vision_flops(preset: str, frames: int) -> dict[str, float]:
    """FLOPs of each vision component for one clip of `frames` frames at the preset's input size."""
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.vidllm import VidLLM

    config = VidLLMConfig.from_name(preset)
    config = config.replace(language=replace(config.language, llm={})) if config.language else config
    size = config.input.image_size
    with torch.device("meta"):
        model = VidLLM(config).to("meta").eval().requires_grad_(False)  # buffers some factories leave on CPU
        images = torch.empty(1, frames, 3, size, size)
    p = config.encoder.patch_size
    grid = (size // p, size // p)
    x = images.reshape(frames, 3, size, size)
    layers = list(config.encoder.intermediate_layers)
    out: dict[str, float] = {}
    out["encoder"], enc = _count(lambda: model.encoder(x, intermediate_layers=layers))
    base = enc["x_norm_patchtokens"]
    out["adapter"], (geom, lang) = _count(lambda: model.adapter(base))
    agg = model.reconstruction.aggregator
    out["aggregator"], (tokens, start) = _count(lambda: agg.forward_tokens(geom.reshape(1, frames, *geom.shape[1:]),
                                                                           grid))
    out["heads"], _ = _count(lambda: model.reconstruction.forward_heads(tokens, start, (size, size)))
    out["metric_depth"], _ = (_count(lambda: model.metric_depth(enc["intermediates"], grid, (size, size)))
                              if model.metric_depth is not None else (0.0, None))
    xyz = torch.empty(frames, lang.shape[1], 3, device="meta")
    out["patch3d"], _ = _count(lambda: model.patch3d(lang, xyz))
    return out


def llm_flops(preset: str, llm_params: float) -> tuple[float, str]:
    """FLOPs of answering one question: prefill of budget + prompt tokens, then NEW_TOKENS decoding steps."""
    from vidllm_core.config import VidLLMConfig

    config = VidLLMConfig.from_name(preset)
    lang = config.language
    prefill = lang.token_budget + PROMPT_TOKENS
    if lang.llm:
        from transformers import AutoConfig, AutoModelForCausalLM

        llm_config = AutoConfig.for_model(**{**lang.llm, "vocab_size": 4096})
        with torch.device("meta"):
            llm = AutoModelForCausalLM.from_config(llm_config).eval().requires_grad_(False)
        params = sum(p.numel() for p in llm.parameters())
        flops, _ = _count(lambda: llm(inputs_embeds=torch.empty(1, prefill, llm_config.hidden_size, device="meta")))
        return flops + NEW_TOKENS * 2.0 * params, f"counted ({params / 1e6:.1f} M params)"
    return 2.0 * llm_params * (prefill + NEW_TOKENS), f"estimated 2 x {llm_params / 1e9:.1f} B x tokens"


def pipelines(v: dict[str, float], llm: float) -> dict[str, float]:
    """Total FLOPs of the joint model and the two concatenation pipelines (module docstring)."""
    reconstruction_model = v["encoder"] + v["aggregator"] + v["heads"]
    three_d_llm = v["encoder"] + v["patch3d"] + llm
    return {
        "joint": sum(v.values()) + llm,
        "concatenation": reconstruction_model + three_d_llm,
        "concatenation_dagger": reconstruction_model + v["encoder"] + v["metric_depth"] + three_d_llm,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="demo,paper")
    ap.add_argument("--frames", default="8,16,32")
    ap.add_argument("--llm-params", type=float, default=7e9, help="LLM size for presets without one (paper)")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    print("| preset | frames | encoder | CTA | aggregator + heads | metric-depth decoder | LLM | joint | "
          "concatenation | concatenation-dagger | joint / concat | joint / concat-dagger |")
    print("|---" * 12 + "|")
    for preset in args.presets.split(","):
        llm, how = llm_flops(preset, args.llm_params)
        for frames in (int(f) for f in args.frames.split(",")):
            v = vision_flops(preset, frames)
            t = pipelines(v, llm)
            g = 1e9 if preset != "paper" else 1e12
            unit = "GFLOP" if preset != "paper" else "TFLOP"
            print(f"| {preset} | {frames} | {v['encoder'] / g:.1f} | {v['adapter'] / g:.1f} | "
                  f"{(v['aggregator'] + v['heads']) / g:.1f} | {v['metric_depth'] / g:.1f} | {llm / g:.1f} | "
                  f"{t['joint'] / g:.1f} {unit} | {t['concatenation'] / g:.1f} | {t['concatenation_dagger'] / g:.1f}"
                  f" | {t['joint'] / t['concatenation']:.2f} | {t['joint'] / t['concatenation_dagger']:.2f} |")
        print(f"<!-- {preset}: LLM {how} -->")


if __name__ == "__main__":
    main()
