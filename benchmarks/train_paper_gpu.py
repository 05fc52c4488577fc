"""Stage-2 training step of the paper preset on one GPU (issue 11 item 4; not in the paper): random weights (DINOv2-L
encoder, VGGT-1B-sized aggregator and heads, a Qwen2-7B-shaped LLM), 32 frames at 518 x 518, bf16 autocast,
activation checkpointing, the LLM held in bf16, AdamW. Prints step time, peak GPU memory and tokens/s.

    .venv/bin/python benchmarks/train_paper_gpu.py [--steps 5] [--frames 32] [--llm-layers 28] [--prompts 4]
        [--no-checkpointing] [--llm-fp32]

Needs CUDA (refused with one line otherwise). The LLM vocabulary is the offline tokenizer's (about 1k tokens), not
Qwen's 152k, so the LM-head memory is below a real checkpoint's; everything else has the paper's shapes.
"""

from __future__ import annotations

import argparse
import sys
import time

#: Qwen2-7B's shape (Hugging Face config.json of Qwen/Qwen2-7B-Instruct); vocab_size comes from the tokenizer.
QWEN2_7B = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
            "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 32768,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=518)
    ap.add_argument("--llm-layers", type=int, default=28)
    ap.add_argument("--prompts", type=int, default=4, help="language samples per scene (data.max_language_samples)")
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--llm-fp32", action="store_true")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("error: benchmarks/train_paper_gpu.py needs a CUDA GPU", file=sys.stderr)
        return 2
    import dataclasses

    from vidllm_core.config import VidLLMConfig
    from vidllm_core.language.prompts import grounding_prompt, scanqa_prompt
    from vidllm_core.models.build import build_tokenizer_for
    from vidllm_core.models.vidllm import VidLLM
    from vidllm_core.training.common import apply_activation_checkpointing
    from vidllm_core.training.recipe import Stage2Spec
    from vidllm_core.training.stage2 import JointModule

    dev = "cuda"
    base = VidLLMConfig.from_name("paper")
    tok = build_tokenizer_for(base)
    llm = {**QWEN2_7B, "num_hidden_layers": args.llm_layers, "vocab_size": len(tok)}
    config = base.replace(language=dataclasses.replace(base.language, llm=llm))
    torch.manual_seed(0)
    model = VidLLM(config)
    model.attach_language(tok)
    if not args.llm_fp32:
        model.language.llm.to(torch.bfloat16)
    module = JointModule(model, Stage2Spec()).to(dev)
    blocks = 0 if args.no_checkpointing else apply_activation_checkpointing(module)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-5, betas=(0.9, 0.999), weight_decay=0.05)

    s, h = args.frames, args.size
    k = torch.tensor([[400.0, 0, h / 2], [0, 400.0, h / 2], [0, 0, 1]])
    extr = torch.zeros(1, s, 3, 4)
    extr[..., :3, :3] = torch.eye(3)
    extr[..., 2, 3] = torch.linspace(0, 1, s)
    prompts = [scanqa_prompt("What color is the chair by the window?", "brown") if i % 2 == 0 else
               grounding_prompt("the brown chair next to the window") for i in range(args.prompts)]
    batch = {"images": torch.rand(1, s, 3, h, h, device=dev), "depth": torch.full((1, s, h, h), 2.0, device=dev),
             "valid": torch.ones(1, s, h, h, dtype=torch.bool, device=dev),
             "extrinsics": extr.to(dev), "intrinsics": k.expand(1, s, 3, 3).contiguous().to(dev),
             "prompts": [prompts], "box_frame": torch.eye(4, device=dev)[None],
             "boxes": [[None if p.task == "scanqa" else torch.tensor([[0.5, 0.2, 2.0, 0.6, 0.6, 0.9]], device=dev)
                        for p in prompts]]}
    n_params = sum(p.numel() for p in module.parameters())
    print(f"paper preset, LLM {args.llm_layers} layers ({'fp32' if args.llm_fp32 else 'bf16'}), "
          f"{n_params / 1e9:.2f} B parameters, {s} frames at {h}x{h}, {args.prompts} prompts, "
          f"activation checkpointing on {blocks} blocks, {torch.cuda.get_device_name()}")
    patch_tokens = s * (h // 14) ** 2
    times = []
    torch.cuda.reset_peak_memory_stats()
    for step in range(args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, parts = module(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        print(f"step {step + 1}: {times[-1]:.3f} s, loss {float(loss.detach()):.4f}", flush=True)
    steady = sorted(times[1:] or times)[len(times[1:] or times) // 2]
    print(f"median step (after the first): {steady:.3f} s; peak GPU memory "
          f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB; image patch tokens/s {patch_tokens / steady:,.0f}; "
          f"scenes/s {1 / steady:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
