"""Shared helpers for the scripts in `benchmarks/`: machine description, timing, peak memory, per-run subprocesses.

Import from a benchmark script run as `python benchmarks/<name>.py` (the script's folder is on `sys.path`):
`from _common import ...`. Nothing here imports torch at module level, so a parent process that only orchestrates
workers stays light.

Helpers:
    machine_info()            torch version, threads, CPU model, cores, load average, CUDA device (dict, JSON-able)
    load_average()            1-minute load average (None where the OS has none)
    current_rss_mb()          resident set size now (Linux /proc/self/statm; falls back to the peak)
    peak_rss_mb()             peak RSS of this process so far (getrusage ru_maxrss, kB on Linux, bytes on macOS)
    time_calls(fn, ...)       wall-clock seconds of repeated calls after warm-up, with a time cap (and, through
                              `cpu_times=`, the process CPU seconds of each call: fairer on a shared machine)
    median(xs)                median of a non-empty list of floats
    matmul_gflops(...)        achieved GFLOP/s of a plain square matmul (the in-run compute baseline)
    run_worker(argv, ...)     run `python <script> argv...` in a fresh process and parse its last stdout line as JSON

Peak memory on CPU: `tracemalloc` does not see torch's allocator and `ru_maxrss` only ever grows, so each measured
configuration runs in a FRESH subprocess (`run_worker`); inside it the peak working memory of the measured calls is
`peak_rss_mb()` after the calls minus `current_rss_mb()` just before them (model and inputs already resident). When
the calls never push `ru_maxrss` above its value before them, the true peak is hidden by an earlier one (e.g. model
construction); `rss_peak_hidden` in the worker output says so and the delta is then an upper bound.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def load_average() -> float | None:
    """1-minute load average, or None where `os.getloadavg` is unavailable."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux) or `platform.processor()`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Describe the machine and the torch build (imports torch)."""
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": load_average(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (monotone: it never goes down)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mb() -> float:
    """Resident set size now, in MiB (Linux /proc/self/statm); the peak where /proc is unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def median(xs: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(xs))


def time_calls(
    fn: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    max_seconds: float | None = None,
    sync: Callable[[], None] | None = None,
    cpu_times: list[float] | None = None,
) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn` after `warmup` untimed calls.

    `max_seconds` caps the timed part: after each timed call, stop once the timed calls so far add up to more than
    it (at least one timed call always runs), so `len(result)` may be below `repeats`. `sync` (e.g.
    `torch.cuda.synchronize`) runs before each clock read so asynchronous devices are timed correctly. When
    `cpu_times` is given, the process CPU time (all threads, `time.process_time`) of each timed call is appended to
    it: other jobs on a shared machine inflate wall time much more than CPU time.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    for _ in range(max(1, repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - c0)
        if max_seconds is not None and sum(times) > max_seconds:
            break
    return times


def matmul_gflops(n: int = 2048, repeats: int = 3, device: str = "cpu", dtype: Any = None) -> dict[str, float]:
    """Achieved GFLOP/s of `a @ b` with two `n x n` random matrices (2 n^3 FLOPs per product), median of repeats."""
    import torch

    dtype = dtype or torch.float32
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.rand(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.rand(n, n, generator=gen).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = time_calls(lambda: a @ b, repeats=repeats, warmup=1, sync=sync)
    t = median(times)
    return {"n": n, "seconds": t, "gflops": 2 * n**3 / t / 1e9}


def run_worker(script: str, argv: Sequence[str], env: dict[str, str] | None = None,
               timeout: float | None = None) -> dict[str, Any]:
    """Run `python script argv...` in a fresh process; return the JSON object on its last stdout line.

    Raises RuntimeError with the tail of stderr when the process fails or prints no JSON.
    """
    proc = subprocess.run(
        [sys.executable, script, *argv], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"worker {' '.join(argv)} failed (exit {proc.returncode}): {tail}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"worker {' '.join(argv)} printed no JSON: {exc}") from None
