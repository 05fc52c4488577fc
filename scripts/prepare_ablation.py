"""Prepare one Table-6 ablation variant (docs/training.md, "Ablations"): its recipes and its initial weights.

The recipes are the demo model's (configs/distill_demo.yaml, configs/train_demo.yaml) with the variant's model
overrides, the shared step budget and the seed; Stage 2 starts from this variant's Stage-1 output. The initial
weights are the demo recipe's Stage-1 `init` (the geometry teacher) except the Cross-Task Adapter, which is freshly
initialised with the same seed for every variant (the teacher's adapter only fits the 16-bridge-token design, so
reusing it would favour that variant); modules a variant lacks (no metric-depth model) are dropped.

Usage: python scripts/prepare_ablation.py OUT_DIR '{"adapter": {"variant": "none"}}' [--seed 0]
           [--stage1-steps 200] [--stage2-steps 300]
Writes OUT_DIR/distill.json, OUT_DIR/train.json (recipes for `vidllm distill|train --config`) and OUT_DIR/init/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from vidllm_core.io import write_text_atomic
from vidllm_core.models.vidllm import VidLLM
from vidllm_core.training.recipe import Recipe

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
LOG_EVERY = 25


def variant_recipe(base: Recipe, overrides: dict, init: Path, steps: int, seed: int) -> Recipe:
    """`base` with the variant's model overrides, initial weights, step budget and seed."""
    return base.replace(model=dataclasses.replace(base.model, overrides=overrides), init=str(init),
                        train=dataclasses.replace(base.train, steps=steps, seed=seed, log_every=LOG_EVERY))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("overrides", type=json.loads, help="nested model config overrides (JSON)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stage1-steps", type=int, default=200)
    ap.add_argument("--stage2-steps", type=int, default=300)
    args = ap.parse_args()
    out = args.out.resolve()

    demo_stage1 = Recipe.from_file(CONFIGS / "distill_demo.yaml")
    stage1 = variant_recipe(demo_stage1, args.overrides, out / "init", args.stage1_steps, args.seed)
    stage2 = variant_recipe(Recipe.from_file(CONFIGS / "train_demo.yaml"), args.overrides, out / "stage1",
                            args.stage2_steps, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "distill.json", stage1.to_json() + "\n")
    write_text_atomic(out / "train.json", stage2.to_json() + "\n")
    if (out / "init" / "model.safetensors").is_file():
        return

    teacher = Path(demo_stage1.init)
    torch.manual_seed(args.seed)
    model = VidLLM(stage1.model_config())
    state = model.state_dict()
    weights = load_file(str(teacher / "model.safetensors"))
    copied = {k: v for k, v in weights.items()
              if not k.startswith("adapter.") and k in state and state[k].shape == v.shape}
    model.load_state_dict(copied, strict=False)
    model.save_pretrained(out / "init")
    print(f"{out / 'init'}: {len(copied)}/{len(state)} tensors from {teacher}, the rest freshly initialised")


if __name__ == "__main__":
    main()
