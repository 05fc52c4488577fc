"""`benchmarks/reconstruct.py --official PATH`: ours vs the official VGGT code, interleaved in one worker process.

Not in the paper: benchmark plumbing for issue 16. One worker per (config, frames) builds the official model from the
checkout at PATH (`_official.build_official`, default init under seed 0) and ours holding the same parameters, then
times the variants round-robin (official, ours all outputs, ours depth + cameras, [ours bf16], official, ...), so
load changes on a shared machine hit every variant alike; each variant's time is reported as the median of its
per-round ratio to the official call of the same round, with the spread (min-max) of those ratios, for wall time
and for the process CPU time of the call (with 1 thread the steadier of the two on a loaded machine).

Peak memory of every call: the kernel's resident high-water mark (`VmHWM`, reset before the call by writing 5 to
/proc/self/clear_refs) minus the RSS just before the call (model and inputs resident; the previous call's outputs
freed and glibc's free pages returned with `malloc_trim`);
the median over rounds is reported. Linux only; elsewhere the memory columns are empty.
"""

from __future__ import annotations

import ctypes
import gc
import time
from pathlib import Path
from typing import Any

OUTPUT_KEYS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")


def _vm(field: str) -> float | None:
    """`VmRSS` / `VmHWM` of this process in MiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc `malloc_trim`), so each call's RSS growth is its own."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rel_err(x: Any, ref: Any) -> float:
    """max|x - ref| / max(1, max|ref|) (the parity tests' criterion)."""
    return float((x.float() - ref.float()).abs().max() / max(1.0, float(ref.abs().max())))


def compare_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one (config, frames) in this process; returns a JSON-able row."""
    import torch
    from _common import load_average, median
    from _official import CONFIGS, build_official, ours_from

    from vidllm_core.models.reconstruction import DEPTH_AND_CAMERAS

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    config = CONFIGS[spec["config"]]
    size = spec["size"] or config["aggregator"]["img_size"]
    torch.manual_seed(0)
    official = build_official(spec["official"], config)
    ours = ours_from(official, config)
    images = torch.rand(spec["frames"], 3, size, size, generator=torch.Generator().manual_seed(1))
    variants: dict[str, Any] = {
        "official": lambda: official(images),
        "ours_all": lambda: ours(images),
        "ours_depth_cameras": lambda: ours(images, outputs=DEPTH_AND_CAMERAS),
    }
    if spec["bf16"]:
        variants["ours_bf16_all"] = lambda: ours(images, autocast_dtype=torch.bfloat16)
        variants["ours_bf16_depth_cameras"] = lambda: ours(
            images, outputs=DEPTH_AND_CAMERAS, autocast_dtype=torch.bfloat16
        )
    load_start = load_average()
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[float]] = {k: [] for k in variants}
    cpu_times: dict[str, list[float]] = {k: [] for k in variants}
    errors: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        reference: dict[str, Any] = {}
        reference_ours: dict[str, Any] = {}
        for rnd in range(spec["warmup"] + spec["repeats"]):
            for name, fn in variants.items():
                gc.collect()
                _release_free_memory()
                rss0 = _vm("VmRSS")
                tracked = _reset_peak()
                c0, t0 = time.process_time(), time.perf_counter()
                out = fn()
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                hwm = _vm("VmHWM")
                if rnd == 0:  # accuracy from the first (warm-up) round
                    got = {k: out[k] for k in OUTPUT_KEYS if k in out}
                    if name == "official":
                        reference = got
                    elif name == "ours_all":
                        reference_ours = got
                        errors[name] = {k: rel_err(v, reference[k]) for k, v in got.items()}
                    elif name.startswith("ours_bf16"):  # against our float32 outputs
                        errors[name] = {k: rel_err(v, reference_ours[k]) for k, v in got.items()}
                    else:
                        errors[name] = {k: rel_err(v, reference[k]) for k, v in got.items()}
                del out
                if rnd >= spec["warmup"]:
                    times[name].append(dt)
                    cpu_times[name].append(cpu)
                    if tracked and rss0 is not None and hwm is not None:
                        peaks[name].append(hwm - rss0)
    ratios = {k: [t / o for t, o in zip(v, times["official"], strict=True)] for k, v in times.items()}
    cpu_ratios = {k: [t / o for t, o in zip(v, cpu_times["official"], strict=True)] for k, v in cpu_times.items()}
    return {
        "config": spec["config"], "frames": spec["frames"], "size": size, "threads": torch.get_num_threads(),
        "repeats": spec["repeats"], "warmup": spec["warmup"],
        "times_s": times, "median_s": {k: median(v) for k, v in times.items()},
        "ratio_median": {k: median(v) for k, v in ratios.items()},
        "ratio_min": {k: min(v) for k, v in ratios.items()}, "ratio_max": {k: max(v) for k, v in ratios.items()},
        "cpu_times_s": cpu_times, "cpu_ratio_median": {k: median(v) for k, v in cpu_ratios.items()},
        "cpu_ratio_min": {k: min(v) for k, v in cpu_ratios.items()},
        "cpu_ratio_max": {k: max(v) for k, v in cpu_ratios.items()},
        "peak_mb": {k: median(v) if v else None for k, v in peaks.items()},
        "errors": errors, "load_average_start": load_start, "load_average_end": load_average(),
    }


def print_compare(rows: list[dict[str, Any]]) -> None:
    """Markdown tables (paste into RESULTS.md)."""
    print("| config | frames | variant | median s | wall / official (median, min-max) | CPU / official (median, "
          "min-max) | peak MB (median) | worst rel. error per output |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['config']} | {r['frames']} | failed: {r['error']} |")
            continue
        for name, t in r["median_s"].items():
            errs = r["errors"].get(name, {})
            err = ", ".join(f"{k} {v:.1e}" for k, v in errs.items()) or "reference"
            peak = r["peak_mb"][name]
            print(f"| {r['config']} | {r['frames']} | {name} | {t:.2f} | {r['ratio_median'][name]:.3f} "
                  f"({r['ratio_min'][name]:.2f}-{r['ratio_max'][name]:.2f}) | {r['cpu_ratio_median'][name]:.3f} "
                  f"({r['cpu_ratio_min'][name]:.2f}-{r['cpu_ratio_max'][name]:.2f}) | "
                  f"{'-' if peak is None else f'{peak:.0f}'} | {err} |")
