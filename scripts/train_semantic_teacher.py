#!/usr/bin/env python
"""Train the demo model's semantic teacher (a small ViT classifying each patch's category and colour from the
synthrooms renderer's instance masks): `python scripts/train_semantic_teacher.py DATA OUT [--steps N]`.
Library: vidllm_core/training/semantic_teacher.py; used by scripts/train_demo.sh."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="synthrooms output folder (scenes/, splits/)")
    ap.add_argument("out", type=Path, help="teacher directory to write (model.safetensors + config.json)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--frames", type=int, default=16, help="frames per step")
    ap.add_argument("--image-size", type=int, default=84, help="short side (the student's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from vidllm_core.data.benchmarks import read_scene_list
    from vidllm_core.errors import VidLLMError
    from vidllm_core.training.semantic_teacher import (
        SemanticTeacherSpec,
        train_semantic_teacher,
    )

    try:
        train = read_scene_list(args.data / "splits" / "synthrooms_train.txt")
        val_file = args.data / "splits" / "synthrooms_val.txt"
        val = read_scene_list(val_file) if val_file.is_file() else []
        spec = SemanticTeacherSpec(steps=args.steps, frames=args.frames, image_size=args.image_size, seed=args.seed)
        summary = train_semantic_teacher(args.data / "scenes", train, args.out, spec, val_ids=val,
                                         log=lambda m: print(m, flush=True))
    except (VidLLMError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("train_frames", "train_seconds", "last_batch")} |
                     {"val": summary.get("val")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
