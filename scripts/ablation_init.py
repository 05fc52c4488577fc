"""Initial weights of one Table-6 ablation variant (docs/training.md, "Ablations").

Every variant starts from the same geometry teacher (runs/geometry_teacher, as the demo recipe does) except the
Cross-Task Adapter, which is freshly initialised with one seed for every variant (the teacher's adapter only fits the
16-bridge-token design, so reusing it would favour that variant). Modules a variant lacks (no metric-depth model) are
dropped.

Usage: python scripts/ablation_init.py TEACHER_DIR OUT_DIR '{"adapter": {"variant": "none"}}'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from vidllm_core.config import VidLLMConfig
from vidllm_core.models.vidllm import VidLLM


def merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if key not in out:
            raise SystemExit(f"error: unknown config key {key!r}")
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out[key], dict) else value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("overrides", type=json.loads, help="nested config overrides (JSON), merged into the teacher's")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    teacher_config = json.loads((args.teacher / "config.json").read_text(encoding="utf-8"))
    config = VidLLMConfig.from_dict(merged(teacher_config, args.overrides))
    torch.manual_seed(args.seed)
    model = VidLLM(config)
    teacher = load_file(str(args.teacher / "model.safetensors"))
    state = model.state_dict()
    copied = {k: v for k, v in teacher.items()
              if not k.startswith("adapter.") and k in state and state[k].shape == v.shape}
    model.load_state_dict(copied, strict=False)
    model.save_pretrained(args.out)
    print(f"{args.out}: {len(copied)}/{len(state)} tensors from {args.teacher}, the rest freshly initialised")


if __name__ == "__main__":
    main()
