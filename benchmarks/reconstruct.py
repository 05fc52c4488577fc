"""Benchmark the reconstruction branch: time and peak memory of `VidLLM.reconstruct` versus the number of frames.

Usage: .venv/bin/python benchmarks/reconstruct.py [--presets tiny,demo] [--frames 8,16,32,64] [--repeats 3]
           [--threads N] [--device cpu|cuda] [--dtype fp32|bf16] [--max-seconds 60] [--json]

For every (preset, frames) a fresh subprocess builds `VidLLM(VidLLMConfig.from_name(preset))` (seeded random
weights, eval mode) and times `model.reconstruct(images [S,3,H,W])` (forward + real-scale alignment + unprojection)
at H = the preset's `input.image_size` short side and a 4:3 width rounded to the patch size (tiny 56x70, demo
168x224, paper 518x686). Forward-hooks split each call into encoder / adapter / frame attention / global attention /
camera head / depth head / metric depth; `forward` time is read from a hook on the model itself, so one call gives
both the `reconstruct` and the `forward` time. The encoder's FLOPs are counted with
`torch.utils.flop_counter.FlopCounterMode` (SDPA forced to the math backend so attention matmuls are counted; on one
image, the encoder being per-frame) and checked against an analytic count; achieved GFLOP/s = FLOPs / encoder time,
reported against a square fp32 (or bf16) matmul timed in the same worker just before.

With `--official PATH` (a local checkout of github.com/facebookresearch/vggt; never vendored here) it instead
compares ours with the official code at `--configs tiny,medium,1b` (`_official.CONFIGS`), all variants interleaved
in one worker per (config, frames): time ratio to the official call of the same round and peak RSS per call
(`_compare.py` says how), plus each output's worst relative error. Example (issue 16 numbers in RESULTS.md):
`benchmarks/reconstruct.py --official /tmp/vggt-official --configs medium --frames 8,32 --repeats 3 --bf16`

Peak memory: CPU = growth of the process RSS during the timed calls (`ru_maxrss` after minus RSS before; see
`_common.py`), CUDA = `torch.cuda.max_memory_allocated()` minus the allocation before the calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    current_rss_mb, load_average, machine_info, matmul_gflops, median, peak_rss_mb, run_worker, time_calls,
)

HOOKED_GROUPS = ("encoder", "adapter", "frame_attn", "global_attn", "camera_head", "depth_head", "metric_depth")


# ---- worker (one configuration, fresh process) ---------------------------------------------------------------
def image_hw(config: Any, aspect: float) -> tuple[int, int]:
    """(H, W): H = input.image_size (short side), W = H * aspect rounded to a multiple of the patch size."""
    p = config.encoder.patch_size
    h = config.input.image_size
    return h, max(p, round(h * aspect / p) * p)


def encoder_flops_analytic(config: Any, h: int, w: int) -> int:
    """Matmul + conv FLOPs (2 per multiply-add) of the DINOv2 encoder on ONE image of h x w.

    Patch embed 2*P*C*3*p^2; per block on N = 1 + R + P tokens: qkv 6NC^2, q k^T and attn v 4N^2C, proj 2NC^2,
    MLP 4NC*hidden. LayerNorm, GELU, softmax and adds are not counted (as FlopCounterMode).
    """
    enc = config.encoder
    p, c = enc.patch_size, enc.embed_dim
    patches = (h // p) * (w // p)
    n = 1 + enc.num_register_tokens + patches
    hidden = int(c * enc.mlp_ratio)
    per_block = 8 * n * c * c + 4 * n * n * c + 4 * n * c * hidden
    return 2 * patches * c * 3 * p * p + enc.depth * per_block


def encoder_flops_counted(model: Any, h: int, w: int, device: str) -> int:
    """FLOPs of one encoder forward on one image, as counted by torch's FlopCounterMode (SDPA math backend)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, h, w, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model.encoder(x, intermediate_layers=list(model.config.encoder.intermediate_layers))
    return int(counter.get_total_flops())


class StageTimer:
    """Forward hooks that add up wall time per module group during one call (`begin()` starts a new call)."""

    def __init__(self, model: Any, sync: Any) -> None:
        self.sync = sync
        self.calls: list[dict[str, float]] = []
        self.enabled = True
        self._open: dict[int, float] = {}
        rec = model.reconstruction
        groups: dict[str, list[Any]] = {
            "forward": [model],
            "encoder": [model.encoder],
            "adapter": [model.adapter],
            "frame_attn": list(rec.aggregator.frame_blocks),
            "global_attn": list(rec.aggregator.global_blocks),
            "camera_head": [rec.camera_head] if rec.camera_head is not None else [],
            "depth_head": [m for m in (rec.depth_head, rec.point_head) if m is not None],
            "metric_depth": [model.metric_depth] if model.metric_depth is not None else [],
        }
        for name, modules in groups.items():
            for module in modules:
                module.register_forward_pre_hook(self._pre)
                module.register_forward_hook(self._make_post(name))

    def begin(self) -> None:
        self.calls.append({})

    def _pre(self, module: Any, args: Any) -> None:
        self.sync()
        self._open[id(module)] = time.perf_counter()

    def _make_post(self, name: str) -> Any:
        def post(module: Any, args: Any, output: Any) -> None:
            self.sync()
            dt = time.perf_counter() - self._open.pop(id(module))
            if self.enabled and self.calls:
                self.calls[-1][name] = self.calls[-1].get(name, 0.0) + dt
        return post


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one (preset, frames) configuration in this process; returns a JSON-able row."""
    import torch

    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.vidllm import VidLLM

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device, frames = spec["device"], spec["frames"]
    bf16 = spec["dtype"] == "bf16"
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    config = VidLLMConfig.from_name(spec["preset"])
    h, w = image_hw(config, spec["aspect"])
    p = config.encoder.patch_size
    patches = (h // p) * (w // p)
    load_start = load_average()

    torch.manual_seed(0)
    with torch.device(device):
        model = VidLLM(config).eval()
    images = torch.rand(frames, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)

    timer = StageTimer(model, sync)

    def call() -> None:
        timer.begin()
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=bf16):
            model.reconstruct(images)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_mb = torch.cuda.memory_allocated() / 2**20
    rss_before, maxrss_before = current_rss_mb(), peak_rss_mb()
    cpu_times: list[float] = []
    times = time_calls(call, repeats=spec["repeats"], warmup=spec["warmup"], max_seconds=spec["max_seconds"],
                       sync=sync, cpu_times=cpu_times)
    maxrss_after = peak_rss_mb()
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20 - base_mb
        mem = {"peak_mb": peak_mb, "memory_method": "cuda.max_memory_allocated - allocated before",
               "baseline_mb": base_mb, "rss_peak_hidden": False}
    else:
        mem = {"peak_mb": maxrss_after - rss_before, "memory_method": "ru_maxrss after - RSS before (fresh process)",
               "baseline_mb": rss_before, "peak_rss_mb": maxrss_after, "rss_peak_hidden": maxrss_after <= maxrss_before}

    timer.enabled = False  # the FLOP count below runs the encoder again: keep it out of the timings
    # After the memory measurement, so their allocations cannot raise the RSS high-water mark before it.
    flops_counted = encoder_flops_counted(model, h, w, device) * frames
    flops_analytic = encoder_flops_analytic(config, h, w) * frames
    mm = matmul_gflops(spec["matmul_n"], repeats=3, device=device, dtype=torch.bfloat16 if bf16 else torch.float32)

    stages = timer.calls[spec["warmup"]:]
    t_med = median(times)
    breakdown = {g: median([c.get(g, 0.0) for c in stages]) for g in ("forward", *HOOKED_GROUPS)}
    breakdown["geometry"] = median([t - c["forward"] for t, c in zip(times, stages, strict=True)])
    breakdown["other"] = max(0.0, breakdown["forward"] - sum(breakdown[g] for g in HOOKED_GROUPS))
    shares = {}  # median over calls of each stage's share of that call (consistent within a call under noise)
    for g in (*HOOKED_GROUPS, "geometry", "other"):
        per_call = []
        for t, c in zip(times, stages, strict=True):
            hooked = sum(c.get(k, 0.0) for k in HOOKED_GROUPS)
            value = {"geometry": t - c["forward"], "other": max(0.0, c["forward"] - hooked)}.get(g, c.get(g, 0.0))
            per_call.append(value / t)
        shares[g] = median(per_call)
    enc_s = breakdown["encoder"]
    enc_gflops = flops_counted / enc_s / 1e9
    return {
        "preset": spec["preset"], "frames": frames, "height": h, "width": w, "device": device,
        "dtype": spec["dtype"], "threads": torch.get_num_threads(),
        "patches_per_frame": patches, "patch_tokens": frames * patches,
        "global_seq": frames * (patches + 1 + config.aggregator.num_register_tokens),
        "repeats": len(times), "warmup": spec["warmup"], "times_s": times, "median_s": t_med, "min_s": min(times),
        "cpu_times_s": cpu_times, "cpu_median_s": median(cpu_times),
        "forward_median_s": breakdown["forward"], "frames_per_s": frames / t_med,
        **mem, "breakdown_s": breakdown, "breakdown_share": shares,
        "encoder_gflop": flops_counted / 1e9, "encoder_gflop_analytic": flops_analytic / 1e9,
        "encoder_s": enc_s, "encoder_gflops": enc_gflops,
        "matmul_n": mm["n"], "matmul_gflops": mm["gflops"], "encoder_vs_matmul": enc_gflops / mm["gflops"],
        "load_average_start": load_start, "load_average_end": load_average(),
    }


# ---- orchestration -------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,demo", help="comma list of tiny, demo, paper")
    ap.add_argument("--frames", default="8,16,32,64", help="comma list of frame counts S")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="stop timing a configuration once its timed calls exceed this many seconds (>= 1 call)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda[:i])")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"),
                    help="bf16 = autocast bf16 for encoder/adapter/aggregator (heads stay fp32, as VGGT); meant "
                         "for CUDA: CPUs without native bf16 run it (and its matmul baseline) far slower")
    ap.add_argument("--aspect", type=float, default=4 / 3, help="width / height before rounding to the patch size")
    ap.add_argument("--matmul-n", type=int, default=2048, help="side of the square matmul baseline")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    ap.add_argument("--save", type=Path, default=None, help="also write the JSON document to this file (atomic)")
    ap.add_argument("--official", type=Path, default=None,
                    help="compare with the official VGGT code at this local checkout (see the module docstring)")
    ap.add_argument("--configs", default="tiny,medium", help="with --official: comma list of tiny, medium, 1b")
    ap.add_argument("--size", type=int, default=0, help="with --official: square image side (default: config's)")
    ap.add_argument("--bf16", action="store_true", help="with --official: also time our bf16 inference mode")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--compare-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None or args.compare_worker is not None:
        return args
    if args.official is not None:
        args.frame_list = [int(f) for f in args.frames.split(",") if f.strip()]
        return args
    from vidllm_core.config import PRESETS

    try:
        args.preset_list = [p.strip() for p in args.presets.split(",") if p.strip()]
        args.frame_list = [int(f) for f in args.frames.split(",") if f.strip()]
    except ValueError:
        ap.error(f"--frames must be a comma list of integers, got {args.frames!r}")
    bad = [p for p in args.preset_list if p not in PRESETS]
    if bad or not args.preset_list:
        ap.error(f"unknown preset(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(PRESETS)}")
    if not args.frame_list or min(args.frame_list) < 1:
        ap.error("--frames needs positive integers")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 0 or args.max_seconds <= 0:
        ap.error("--repeats >= 1, --warmup >= 0, --threads >= 0 and --max-seconds > 0 are required")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        ap.error(f"--device must be cpu or cuda, got {args.device!r}")
    return args


def print_tables(info: dict[str, Any], rows: list[dict[str, Any]], load: tuple[Any, Any], wall: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    dev = info.get("cuda_device", "") if rows and rows[0].get("device", "").startswith("cuda") else ""
    console.print(
        f"torch {info['torch']}, {info['torch_threads']} thread(s); CPU {info['cpu_model']} ({info['cpu_count']} cores,"
        f" {info['machine']}){'; GPU ' + dev if dev else ''}; load average {load[0]} before, {load[1]} after; "
        f"total {wall:.0f} s"
    )
    ok = [r for r in rows if "error" not in r]
    t = Table(title="Reconstruction branch: VidLLM.reconstruct (random weights, batch 1, no grad)")
    for col in ("preset", "frames", "resolution (HxW)", "tokens S*P / global seq", "reps", "time median (s)",
                "time min (s)", "forward (s)", "frames/s", "CPU s / call", "peak MB"):
        t.add_column(col, justify="left" if col == "preset" else "right")
    for r in ok:
        peak = f"{r['peak_mb']:.0f}" + (" (<=)" if r.get("rss_peak_hidden") else "")
        t.add_row(r["preset"], str(r["frames"]), f"{r['height']}x{r['width']}",
                  f"{r['patch_tokens']:,} / {r['global_seq']:,}", str(r["repeats"]), f"{r['median_s']:.3f}",
                  f"{r['min_s']:.3f}", f"{r['forward_median_s']:.3f}", f"{r['frames_per_s']:.2f}",
                  f"{r['cpu_median_s']:.2f}", peak)
    console.print(t)

    b = Table(title="Where the time goes (% of each reconstruct call, median over calls; forward hooks)")
    groups = (*HOOKED_GROUPS, "other", "geometry")
    for col in ("preset", "frames", *groups):
        b.add_column(col, justify="left" if col == "preset" else "right")
    for r in ok:
        b.add_row(r["preset"], str(r["frames"]),
                  *(f"{100 * r['breakdown_share'][g]:.0f}" for g in groups))
    console.print(b)

    f = Table(title="Encoder achieved throughput vs a plain matmul in the same worker")
    for col in ("preset", "frames", "encoder GFLOP", "encoder (s)", "encoder GFLOP/s", "matmul GFLOP/s", "ratio"):
        f.add_column(col, justify="left" if col == "preset" else "right")
    for r in ok:
        f.add_row(r["preset"], str(r["frames"]), f"{r['encoder_gflop']:.2f}", f"{r['encoder_s']:.3f}",
                  f"{r['encoder_gflops']:.1f}", f"{r['matmul_gflops']:.1f} ({r['matmul_n']}^2 {r['dtype']})",
                  f"{r['encoder_vs_matmul']:.2f}")
    console.print(f)
    for r in rows:
        if "error" in r:
            console.print(f"[red]{r['preset']} x {r['frames']} frames failed:[/red] {r['error']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_one(json.loads(args.worker))))
        return 0
    if args.compare_worker is not None:
        from _compare import compare_one

        print(json.dumps(compare_one(json.loads(args.compare_worker))))
        return 0
    if args.official is not None:
        return compare_main(args)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda requested but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    load_before, t0 = load_average(), time.perf_counter()
    rows: list[dict[str, Any]] = []
    for preset in args.preset_list:
        for frames in args.frame_list:
            spec = {"preset": preset, "frames": frames, "repeats": args.repeats, "warmup": args.warmup,
                    "max_seconds": args.max_seconds, "threads": args.threads, "device": args.device,
                    "dtype": args.dtype, "aspect": args.aspect, "matmul_n": args.matmul_n}
            if not args.json:
                print(f"... {preset} x {frames} frames", file=sys.stderr, flush=True)
            try:
                rows.append(run_worker(str(Path(__file__).resolve()), ["--worker", json.dumps(spec)], env=env))
            except RuntimeError as exc:
                rows.append({"preset": preset, "frames": frames, "error": str(exc)})
    wall, load_after = time.perf_counter() - t0, load_average()
    doc = {"machine": info, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                     if k != "worker"},
           "load_average_before": load_before, "load_average_after": load_after, "wall_s": wall, "rows": rows}
    if args.save is not None:
        from vidllm_core.io import write_json_atomic

        write_json_atomic(args.save, doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_tables(info, rows, (load_before, load_after), wall)
    return 1 if any("error" in r for r in rows) else 0


def compare_main(args: argparse.Namespace) -> int:
    """`--official`: one worker per (config, frames), markdown table on stdout (JSON with --json / --save)."""
    from _compare import print_compare

    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    load_before, t0 = load_average(), time.perf_counter()
    rows: list[dict[str, Any]] = []
    for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
        for frames in args.frame_list:
            spec = {"config": config, "frames": frames, "repeats": args.repeats, "warmup": args.warmup,
                    "threads": args.threads, "official": str(args.official), "bf16": args.bf16, "size": args.size}
            print(f"... {config} x {frames} frames", file=sys.stderr, flush=True)
            try:
                rows.append(run_worker(str(Path(__file__).resolve()), ["--compare-worker", json.dumps(spec)], env=env))
            except RuntimeError as exc:
                rows.append({"config": config, "frames": frames, "error": str(exc)})
    doc = {"machine": machine_info(), "load_average_before": load_before, "load_average_after": load_average(),
           "wall_s": time.perf_counter() - t0, "rows": rows}
    if args.save is not None:
        from vidllm_core.io import write_json_atomic

        write_json_atomic(args.save, doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"load average {load_before} before, {doc['load_average_after']} after; {doc['wall_s']:.0f} s")
        print_compare(rows)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
