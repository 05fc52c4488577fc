"""Training throughput (issue 6 item 6): Stage-2 samples/s and peak memory for the tiny and demo presets on CPU;
with a GPU, also the paper preset with 32 frames at 518 in bf16. Each preset runs in its own subprocess so its peak
RSS (resource.getrusage) is its own. Prints a table.

    .venv/bin/python benchmarks/train.py [--steps 5] [--threads 2] [--presets tiny demo] [--paper]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (frames per sample, short side) used for each preset: the demo recipe's 8 x 168, the paper's 32 x 518.
SHAPES = {"tiny": (4, 56), "demo": (8, 168), "paper": (32, 518)}


def _scenes(root: Path, frames: int) -> Path:
    sys.path.insert(0, str(REPO / "tests" / "training"))
    from conftest import write_scene  # the analytic box-room renderer of the training tests

    for i in range(2):
        write_scene(root, f"scene{i:04d}_00", seed=i, frames=max(frames, 6))
    return root


def one(preset: str, steps: int, threads: int, device: str) -> dict:
    import resource

    import torch

    from vidllm_core.training import stage2
    from vidllm_core.training.common import DistInfo, fit
    from vidllm_core.training.recipe import Recipe

    torch.set_num_threads(threads)
    frames, size = SHAPES[preset]
    with tempfile.TemporaryDirectory() as tmp:
        scenes = _scenes(Path(tmp) / "scenes", frames)
        recipe = Recipe.from_dict({
            "stage": "train", "model": {"preset": preset},
            "data": {"scenes": str(scenes), "frames": frames, "image_size": size},
            "train": {"steps": steps + 1, "save_every": 10**6, "precision": "auto"},
        })
        run = stage2.setup(recipe, Path(tmp) / "run", DistInfo(device=device))
        run.extra_files = {}
        times: list[float] = []
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

        def log(rec: dict) -> None:
            times.append(rec["step_time_s"])

        t0 = time.perf_counter()
        import vidllm_core.training.common as common

        common.checkpoint = lambda run: None  # time the steps, not the disk
        fit(run, log=log)
        wall = time.perf_counter() - t0
    steady = times[1:] or times  # the first step includes lazy initialisation
    out = {"preset": preset, "device": device, "frames": frames, "short_side": size,
           "step_s": sum(steady) / len(steady), "samples_per_s": len(steady) / sum(steady), "wall_s": wall,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": threads}
    if device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", nargs="+", default=["tiny", "demo"])
    ap.add_argument("--paper", action="store_true", help="also the paper preset (needs a CUDA GPU)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.steps, a.threads, a.device)))
        return
    jobs = [(p, "cpu") for p in a.presets]
    if a.paper:
        jobs.append(("paper", "cuda"))
    rows = []
    for preset, device in jobs:
        proc = subprocess.run([sys.executable, __file__, "--one", preset, "--steps", str(a.steps), "--threads",
                               str(a.threads), "--device", device], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            print(f"{preset}: failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"Stage-2 training step, batch 1, fp32 on CPU ({a.threads} threads) / bf16 on CUDA, {a.steps} timed steps")
    print(f"{'preset':<7}{'device':<8}{'frames':>7}{'short':>7}{'step s':>9}{'samples/s':>11}{'peak RSS MiB':>14}"
          f"{'peak CUDA MiB':>15}")
    for r in rows:
        cuda = f"{r['peak_cuda_mib']:.0f}" if "peak_cuda_mib" in r else "-"
        print(f"{r['preset']:<7}{r['device']:<8}{r['frames']:>7}{r['short_side']:>7}{r['step_s']:>9.3f}"
              f"{r['samples_per_s']:>11.3f}{r['peak_rss_mib']:>14.0f}{cuda:>15}")


if __name__ == "__main__":
    main()
