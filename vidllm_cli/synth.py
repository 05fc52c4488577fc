"""`vidllm synth`: generate synthrooms, indoor videos with exact 3D ground truth and benchmark-format annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, user_errors


def command(
    out_dir: Annotated[Path, typer.Argument(help="Output folder (scenes/, posed_images/, annotations/, splits/, synthrooms.json).")],
    scenes: Annotated[int, typer.Option("--scenes", help="Number of scenes.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed + arguments = same files.")] = 0,
    frames: Annotated[int, typer.Option("--frames", help="Frames per scene video.")] = 48,
    size: Annotated[str, typer.Option("--size", help="Frame size WIDTHxHEIGHT (even numbers).")] = "224x168",
    layout: Annotated[Optional[Path], typer.Option("--layout", help="Hand-written scene JSON (see docs/synth.md).")] = None,
    split_ratios: Annotated[str, typer.Option("--split-ratios", help="train,val,test fractions of the scenes.")] = "0.8,0.1,0.1",
    fps: Annotated[int, typer.Option("--fps", help="Frame rate of video.mp4.")] = 10,
    no_video: Annotated[bool, typer.Option("--no-video", help="Skip video.mp4 (frames are still written).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a folder that already holds a dataset "
                                            "(its annotations and splits are rewritten).")] = False,
) -> None:
    """Generate synthrooms scenes with RGB, depth, poses, meshes and ScanQA/SQA3D/ScanRefer/Multi3DRefer/Nr3D/Sr3D files."""
    with user_errors():
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from vidllm_core.data.synth.dataset import (SynthConfig, check_new_dataset, generate_dataset, parse_ratios,
                                                    parse_size, scene_name)
        from vidllm_core.data.synth.scene import load_layout
        from vidllm_core.io import check_output, run_lock

        w, h = parse_size(size)
        cfg = SynthConfig(scenes=scenes, seed=seed, frames=frames, width=w, height=h, fps=fps,
                          split_ratios=parse_ratios(split_ratios), layout=str(layout) if layout else None,
                          video=not no_video)
        cfg.validate()
        if cfg.layout is not None:
            load_layout(cfg.layout, scene_name(0))  # a bad layout fails before anything is written
        check_output(out_dir, "output directory")
        check_new_dataset(out_dir, overwrite)
        t0 = time.perf_counter()
        bar = Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                       TimeElapsedColumn(), console=console, transient=False)
        with run_lock(out_dir), bar:
            task = bar.add_task("", total=scenes)
            summary = generate_dataset(out_dir, cfg, overwrite=overwrite,
                                       progress=lambda i, sid: bar.update(task, completed=i, description=sid))
        n = summary["annotation_counts"]
        total = {k: sum(n[s][k] for s in n) for k in n["train"]}
        console.print(f"wrote {scenes} scenes to {out_dir} in {time.perf_counter() - t0:.1f} s "
                      f"(train/val/test {len(summary['splits']['train'])}/{len(summary['splits']['val'])}/"
                      f"{len(summary['splits']['test'])}; {summary['visible_objects']}/{summary['objects']} objects visible)")
        console.print("annotations: " + ", ".join(f"{k} {v}" for k, v in total.items()))
