"""GPU benchmark of the paper-size networks (issue 16): reconstruction / joint forward time, peak memory, bf16 vs fp32.

Not in the paper: measurement script. On one CUDA device, with random weights (no checkpoint is needed):

* `vidllm-paper`: `VidLLM(VidLLMConfig.from_name("paper"))` (DINOv2-L encoder, Cross-Task Adapter, VGGT-1B-size
  aggregator and heads, metric-depth model). "joint" = `model(images)` (every output), "reconstruction" =
  `model.geometry(model(images, outputs=DEPTH_AND_CAMERAS))` (= `model.reconstruct`: depth + cameras only, scale
  alignment, unprojection: the vision pass's geometry).
* `vggt-1b`: our `VGGTReconstruction` with the official VGGT-1B shapes (`convert.vggt.VGGT_1B_MODEL_CONFIG`),
  all outputs vs `outputs=DEPTH_AND_CAMERAS`.

fp32 runs plain float32 (TF32 off); bf16 runs `torch.autocast("cuda", torch.bfloat16)` over the whole call
(`autocast_dtype=torch.bfloat16` for `vggt-1b`, so its heads run in bf16 too), and reports each output's worst
relative error against the fp32 run of the same weights. Frames are `--size` x `--size` * 4/3 (rounded to the patch).
Variants are interleaved round-robin (--repeats rounds after one warm-up); time = median with CUDA synchronised;
peak = `torch.cuda.max_memory_allocated()` during the call minus the allocation before it.

Usage: .venv/bin/python benchmarks/gpu_paper.py [--frames 8,16,32] [--repeats 3] [--size 518] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any


def _call_stats(fn: Any, torch: Any) -> tuple[float, float, Any]:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0, (torch.cuda.max_memory_allocated() - base) / 2**20, out


def _rel(x: Any, ref: Any) -> float:
    return float((x.float() - ref.float()).abs().max() / max(1.0, float(ref.float().abs().max())))


def _variants(name: str, frames: int, size: int, torch: Any) -> tuple[Any, dict[str, Any]]:
    from vidllm_core.models.reconstruction import DEPTH_AND_CAMERAS

    bf16 = torch.bfloat16
    if name == "vidllm-paper":
        from vidllm_core.config import VidLLMConfig
        from vidllm_core.models.vidllm import VidLLM

        config = VidLLMConfig.from_name("paper")
        with torch.device("cuda"):
            model = VidLLM(config).eval()
        p = config.encoder.patch_size
        images = torch.rand(frames, 3, size, round(size * 4 / 3 / p) * p, device="cuda")

        def recon() -> dict[str, Any]:  # what `reconstruct` does (the vision pass itself stays in pipelines/)
            g = model.geometry(model(images[None], outputs=DEPTH_AND_CAMERAS))
            return {"depth": g.depth, "world_points": g.world_points, "extrinsic": g.extrinsic}

        def joint() -> dict[str, Any]:
            return model(images[None])

        def auto(fn: Any) -> Any:
            def run() -> Any:
                with torch.autocast("cuda", dtype=bf16):
                    return fn()
            return run

        return model, {"reconstruction fp32": recon, "joint fp32": joint,
                       "reconstruction bf16": auto(recon), "joint bf16": auto(joint)}
    from vidllm_core.convert.vggt import VGGT_1B_MODEL_CONFIG, build_model

    with torch.device("cuda"):
        model = build_model(VGGT_1B_MODEL_CONFIG).eval()
    images = torch.rand(frames, 3, size, round(size * 4 / 3 / 14) * 14, device="cuda")
    return model, {
        "all fp32": lambda: model(images), "depth+cameras fp32": lambda: model(images, outputs=DEPTH_AND_CAMERAS),
        "all bf16": lambda: model(images, autocast_dtype=bf16),
        "depth+cameras bf16": lambda: model(images, outputs=DEPTH_AND_CAMERAS, autocast_dtype=bf16),
    }


def measure(name: str, frames: int, size: int, repeats: int, torch: Any) -> dict[str, Any]:
    """One model at one frame count: every variant interleaved, errors of bf16 against fp32."""
    torch.manual_seed(0)
    model, variants = _variants(name, frames, size, torch)
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[float]] = {k: [] for k in variants}
    errors: dict[str, dict[str, float]] = {}
    refs: dict[str, Any] = {}
    with torch.inference_mode():
        for rnd in range(1 + repeats):
            for key, fn in variants.items():
                dt, peak, out = _call_stats(fn, torch)
                if rnd == 0:
                    tensors = {k: v for k, v in out.items() if torch.is_tensor(v) and v.is_floating_point()}
                    kind = key.rsplit(" ", 1)[0]
                    if key.endswith("fp32"):
                        refs[kind] = tensors
                    else:
                        errors[key] = {k: _rel(v, refs[kind][k]) for k, v in tensors.items() if k in refs[kind]}
                else:
                    times[key].append(dt)
                    peaks[key].append(peak)
                del out
    del model
    torch.cuda.empty_cache()
    return {"model": name, "frames": frames, "size": size,
            "median_s": {k: statistics.median(v) for k, v in times.items()},
            "times_s": times, "peak_mb": {k: max(v) for k, v in peaks.items()}, "bf16_errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="8,16,32")
    ap.add_argument("--models", default="vidllm-paper,vggt-1b")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=518, help="image height (width = 4/3 of it)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device (this script measures the GPU path; benchmarks/reconstruct.py is the CPU one)",
              file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}; torch {torch.__version__}; bf16 supported: {torch.cuda.is_bf16_supported()}")
    rows = []
    for name in args.models.split(","):
        for frames in [int(f) for f in args.frames.split(",")]:
            try:
                row = measure(name, frames, args.size, args.repeats, torch)
            except torch.cuda.OutOfMemoryError as exc:
                row = {"model": name, "frames": frames, "error": f"out of memory: {str(exc).splitlines()[0]}"}
                torch.cuda.empty_cache()
            rows.append(row)
            if "error" in row:
                print(f"| {name} | {frames} | {row['error']} |", flush=True)
                continue
            for key, t in row["median_s"].items():
                errs = ", ".join(f"{k} {v:.1e}" for k, v in row["bf16_errors"].get(key, {}).items()) or "fp32 reference"
                print(f"| {name} | {frames} | {key} | {t:.3f} s | {row['peak_mb'][key]:.0f} MB | {errs} |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": device, "torch": torch.__version__, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
