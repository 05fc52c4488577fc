"""`vidllm reconstruct`: video or image folder -> coloured PLY, cameras JSON and depth PNGs (issue 2 item 5).

Stages: read + uniformly sample frames, preprocess like the model was trained, run the reconstruction branch,
gather confident points, write every output atomically (all outputs are staged and renamed at the very end, so a
failure leaves no partial file).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidllm_cli.common import console, fail, user_errors
from vidllm_cli.scene import resolve_model as resolve_default_model

# Without --model / --vggt the shipped demo model is used (vidllm_core.assets.default_model_dir); this message is for
# an install that has none.
NO_MODEL_MESSAGE = ("no model given and no shipped demo model in this install: pass --model DIR (a directory "
                    "written by `vidllm init`) or --vggt CKPT")


def resolve_model(model_dir: Optional[Path], vggt: Optional[Path]) -> Optional[Path]:
    """--model, or the shipped demo model when neither --model nor --vggt is given."""
    return model_dir if vggt is not None else resolve_default_model(model_dir)


class _Preprocess:
    """Preprocessing settings of the official VGGT checkpoint (load_and_preprocess_images defaults)."""

    mode = "crop"
    image_size = 518
    patch_size = 14
    num_frames = 32


class _OfficialVGGTAdapter:
    """Wrap the official-VGGT network (relative scale) so it answers `reconstruct` like VidLLM does."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.preprocess_config = _Preprocess()

    def to(self, device: str) -> "_OfficialVGGTAdapter":
        self.net.to(device)
        return self

    def reconstruct(self, images: Any) -> dict[str, Any]:
        import torch

        from vidllm_core.geometry.pose_encoding import pose_encoding_to_extri_intri
        from vidllm_core.geometry.unproject import unproject_depth_to_world

        with torch.inference_mode():
            pred = self.net(images)
        H, W = images.shape[-2:]
        extrinsic, intrinsic = pose_encoding_to_extri_intri(pred["pose_enc"], (H, W))
        depth = pred["depth"].reshape(-1, H, W)
        extrinsic, intrinsic = extrinsic.reshape(-1, 3, 4), intrinsic.reshape(-1, 3, 3)
        return {"depth": depth, "depth_conf": pred["depth_conf"].reshape(-1, H, W), "extrinsic": extrinsic,
                "intrinsic": intrinsic, "world_points": unproject_depth_to_world(depth, extrinsic, intrinsic),
                "scale": 1.0, "metric": False}


def check_model_source(model_dir: Optional[Path], vggt: Optional[Path]) -> None:
    """Fail (one line) unless exactly one existing model source is given (no source = the shipped demo model);
    runs before any work starts."""
    model_dir = resolve_model(model_dir, vggt)
    if model_dir is None and vggt is None:
        fail(NO_MODEL_MESSAGE)
    if model_dir is not None and vggt is not None:
        fail("give either --model or --vggt, not both")
    if model_dir is not None and not model_dir.is_dir():
        fail(f"model directory not found: '{model_dir}'")
    if vggt is not None and not vggt.exists():
        fail(f"VGGT checkpoint not found: '{vggt}'")


def load_model(model_dir: Optional[Path], vggt: Optional[Path], device: str) -> Any:
    """Return an object with `.preprocess_config` and `.reconstruct(images)` on `device` (tests replace this)."""
    model_dir = resolve_model(model_dir, vggt)
    if model_dir is not None:
        from vidllm_core.models.vidllm import VidLLM

        return VidLLM.from_pretrained(model_dir, language=False).to(device).eval()
    try:
        from vidllm_core.convert.vggt import VGGT_1B_MODEL_CONFIG, build_from_official, load_official_checkpoint
        from vidllm_core.geometry.pose_encoding import pose_encoding_to_extri_intri  # noqa: F401
        from vidllm_core.geometry.unproject import unproject_depth_to_world  # noqa: F401
    except ImportError as exc:
        fail(f"--vggt is not available in this build ({exc.name or exc} is missing)")
    net = build_from_official(VGGT_1B_MODEL_CONFIG, load_official_checkpoint(vggt)).eval()
    return _OfficialVGGTAdapter(net).to(device)


def _can_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _check_writable(path: Path, what: str) -> None:
    """Fail early (one line) when `path` cannot be created: parent is a file or a folder we cannot write."""
    parent = path.parent if path.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        fail(f"cannot write {what} '{path}': '{probe}' is not a folder")
    if not _can_write(probe):
        fail(f"cannot write {what} '{path}': folder '{probe}' is not writable")
    if path.is_dir() and what != "depth folder":
        fail(f"cannot write {what} '{path}': it is a folder")


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as progress:
        yield progress


def command(
    video: Annotated[Path, typer.Argument(help="Video file (mp4, mov, ...) or a folder of .jpg/.png images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Point cloud to write (.ply).")],
    cameras: Annotated[Optional[Path], typer.Option("--cameras", help="Also write per-frame cameras (JSON).")] = None,
    depth_dir: Annotated[Optional[Path], typer.Option("--depth-dir",
                                                      help="Also write 16-bit depth PNGs in millimetres.")] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", min=1,
                                                  help="Frames to sample uniformly [default: the model's]")] = None,
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="Model directory (vidllm init / train) [default: the shipped demo model].")] = None,
    vggt: Annotated[Optional[Path], typer.Option("--vggt", help="Official VGGT checkpoint (relative scale).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    conf_percentile: Annotated[float, typer.Option("--conf-percentile", min=0.0, max=100.0,
                                                   help="Drop this % of least-confident points.")] = 50.0,
    max_points: Annotated[Optional[int], typer.Option("--max-points", min=1,
                                                      help="Cap on points written (seeded random subset).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
) -> None:
    """Reconstruct a video (or image folder) into a coloured point cloud with cameras and depth."""
    t_start = time.perf_counter()
    if output.suffix.lower() != ".ply":
        fail(f"output must end in .ply, got '{output}'")
    if device not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda, got '{device}'")
    _check_writable(output, "point cloud")
    if cameras is not None:
        _check_writable(cameras, "cameras file")
    if depth_dir is not None:
        _check_writable(depth_dir, "depth folder")
    check_model_source(model, vggt)

    with user_errors():
        import torch

        from vidllm_core.data.video import probe, read_frames
        from vidllm_core.export import (
            atomic_dir, check_replaceable_dir, write_cameras_json, write_depth_pngs, write_point_cloud,
        )
        from vidllm_core.io import atomic_path
        from vidllm_core.pipelines.reconstruct import preprocess_settings, reconstruct_frames

        if depth_dir is not None:
            check_replaceable_dir(depth_dir)
        if device == "cuda" and not torch.cuda.is_available():
            fail("--device cuda was asked for but no CUDA device is available")
        probe(video)  # a broken input fails here, before any model is loaded
        timings: dict[str, float] = {}

        with _progress() as progress:
            task = progress.add_task("loading model", total=5)
            t = time.perf_counter()
            net = load_model(model, vggt, device)
            settings = preprocess_settings(net)
            timings["load_model_s"] = time.perf_counter() - t
            progress.update(task, advance=1, description="reading frames")

            t = time.perf_counter()
            clip = read_frames(video, frames or settings.num_frames)
            timings["read_s"] = time.perf_counter() - t
            src_h, src_w = clip.images.shape[1:3]
            console.print(f"read {len(clip.indices)} of {clip.num_source_frames} frames ({src_w}x{src_h}) "
                          f"from {video} with {clip.backend}")

            def on_stage(name: str) -> None:
                descriptions = {"preprocessing": "preprocessing",
                                "network": f"network ({len(clip.indices)} frames, {device})",
                                "postprocessing": "writing outputs"}
                progress.update(task, advance=1, description=descriptions.get(name, name))

            rec = reconstruct_frames(net, list(clip.images), device=device, on_stage=on_stage)
            timings.update({k: v for k, v in rec.timings.items() if k != "postprocess_s"})
            S, H, W = rec.num_frames, rec.height, rec.width

            t = time.perf_counter()
            cloud = rec.point_cloud(conf_percentile=conf_percentile, max_points=max_points)
            with contextlib.ExitStack() as stage:  # every output is renamed into place only if all succeed
                write_point_cloud(stage.enter_context(atomic_path(output)), cloud.points, cloud.colors,
                                  cloud.confidence)
                if cameras is not None:
                    write_cameras_json(
                        stage.enter_context(atomic_path(cameras)), source_indices=clip.indices.tolist(),
                        timestamps=None if clip.timestamps is None else clip.timestamps.tolist(),
                        camera_to_world=rec.camera_to_world(), intrinsics=rec.intrinsic, width=W, height=H,
                        metric=rec.metric, scale=rec.scale, source_intrinsics=rec.source_intrinsics(),
                        extra={"source": str(video), "source_width": int(src_w), "source_height": int(src_h),
                               "fps": clip.fps, "preprocess": {"mode": settings.mode,
                                                               "image_size": settings.image_size}})
                if depth_dir is not None:
                    write_depth_pngs(stage.enter_context(atomic_dir(depth_dir)), rec.depth)
            timings["write_s"] = time.perf_counter() - t + rec.timings.get("postprocess_s", 0.0)
            progress.update(task, advance=1)
    timings["total_s"] = time.perf_counter() - t_start

    summary = {
        "input": str(video),
        "backend": clip.backend,
        "frames": int(S),
        "source_frames": clip.indices.tolist(),
        "source_resolution": [int(src_w), int(src_h)],
        "resolution": [int(W), int(H)],
        "points": int(len(cloud.points)),
        "scale": rec.scale,
        "metric": rec.metric,
        "device": device,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "outputs": {"ply": str(output), "cameras": None if cameras is None else str(cameras),
                    "depth_dir": None if depth_dir is None else str(depth_dir)},
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    units = "metres" if rec.metric else "relative units (not metric)"
    console.print(f"wrote {summary['points']:,} points to {output} ({units}, scale {rec.scale:.4g}) "
                  f"in {timings['total_s']:.2f} s")
    if cameras is not None:
        console.print(f"wrote {S} cameras to {cameras}")
    if depth_dir is not None:
        console.print(f"wrote {S} depth PNGs (uint16 millimetres) to {depth_dir}/")
