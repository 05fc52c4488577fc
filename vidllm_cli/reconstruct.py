"""`vidllm reconstruct`: video, image folder or ScanNet scene -> coloured PLY, cameras JSON, depth PNGs and an
export folder (COLMAP, GLB, nerfstudio, preview); long videos in overlapping chunks within a memory budget (issues 2
and 13). Argument parsing and printing only: the work is `vidllm_core.pipelines.reconstruct_video`."""

from __future__ import annotations

import contextlib
import json
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
        from vidllm_core.convert.vggt_adapter import OfficialVGGTAdapter
    except ImportError as exc:
        fail(f"--vggt is not available in this build ({exc.name or exc} is missing)")
    net = build_from_official(VGGT_1B_MODEL_CONFIG, load_official_checkpoint(vggt)).eval()
    return OfficialVGGTAdapter(net).to(device)


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("loading model")
        yield lambda name: progress.update(task, description=name)


Opt = typer.Option
OutputOpt = Annotated[Path, Opt("--output", "-o", help="Point cloud to write (.ply).")]
CamerasOpt = Annotated[Optional[Path], Opt("--cameras", help="Also write per-frame cameras (JSON).")]
DepthOpt = Annotated[Optional[Path], Opt("--depth-dir", help="Also write 16-bit depth PNGs in millimetres.")]
ExportOpt = Annotated[Optional[Path], Opt("--export", help="Also write a folder with COLMAP (text + binary), GLB, "
                                          "nerfstudio transforms.json, images and a preview (docs/reconstruct.md).")]
PreviewOpt = Annotated[Optional[Path], Opt("--preview", help="Also write a preview PNG (top + perspective view).")]
FramesOpt = Annotated[Optional[int], Opt("--frames", min=1, help="Frames to sample uniformly [default: the model's]")]
ModelOpt = Annotated[Optional[Path], Opt("--model", help="Model directory (vidllm init / train) [default: the "
                                         "shipped demo model].")]
VggtOpt = Annotated[Optional[Path], Opt("--vggt", help="Official VGGT checkpoint (relative scale).")]
ConfOpt = Annotated[float, Opt("--conf-percentile", min=0.0, max=100.0, help="Drop this % of least-confident points.")]
MaxPointsOpt = Annotated[Optional[int], Opt("--max-points", min=1, help="Cap on points written (seeded subset).")]
ChunkOpt = Annotated[Optional[int], Opt("--chunk-frames", help="Frames per forward pass (long videos) [default: all, "
                                        "or what --max-memory-gb allows].")]
OverlapOpt = Annotated[int, Opt("--overlap", help="Frames shared by consecutive chunks (their alignment).")]
MemoryOpt = Annotated[Optional[float], Opt("--max-memory-gb", help="Peak memory budget; picks the chunk size.")]
AlignOpt = Annotated[str, Opt("--chunk-align", help="sim3 (default) or se3 (keep each chunk's metric scale).")]
GravityOpt = Annotated[bool, Opt("--gravity-align", help="z up, floor at z = 0 (RANSAC floor plane).")]
DistanceOpt = Annotated[Optional[str], Opt("--known-distance", help="A,B,METRES: cameras of sampled frames A and B "
                                           "are METRES apart (sets the scale).")]
HeightOpt = Annotated[Optional[float], Opt("--camera-height", help="Cameras are this many metres above the floor "
                                           "(sets the scale).")]


def command(video: Annotated[Path, typer.Argument(help="Video file, image folder or ScanNet posed-images scene.")],
            output: OutputOpt, cameras: CamerasOpt = None, depth_dir: DepthOpt = None, export: ExportOpt = None,
            preview: PreviewOpt = None, frames: FramesOpt = None, model: ModelOpt = None, vggt: VggtOpt = None,
            device: Annotated[str, Opt("--device", help="cpu or cuda.")] = "cpu", conf_percentile: ConfOpt = 50.0,
            max_points: MaxPointsOpt = None, chunk_frames: ChunkOpt = None, overlap: OverlapOpt = 4,
            max_memory_gb: MemoryOpt = None, chunk_align: AlignOpt = "sim3", gravity_align: GravityOpt = False,
            known_distance: DistanceOpt = None, camera_height: HeightOpt = None,
            as_json: Annotated[bool, Opt("--json", help="Print a machine-readable summary on stdout.")] = False,
            ) -> None:
    """Reconstruct a video (or image folder) into a coloured point cloud with cameras, depth and exports."""
    if device not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda, got '{device}'")
    check_model_source(model, vggt)
    with user_errors():
        from vidllm_core.data.frames import open_frame_source
        from vidllm_core.io import check_not_inputs
        from vidllm_core.pipelines.chunked_pass import ChunkOptions
        from vidllm_core.pipelines.outputs import OutputRequest, check_outputs
        from vidllm_core.pipelines.reconstruct_video import ReconstructOptions, reconstruct_to_outputs
        from vidllm_core.pipelines.scale_anchor import parse_anchor

        request = OutputRequest(output, cameras, depth_dir, export, preview, conf_percentile, max_points)
        check_outputs(request)
        outputs = (("-o", output), ("--cameras", cameras), ("--preview", preview), ("--depth-dir", depth_dir),
                   ("--export", export))
        check_not_inputs([(n, p) for n, p in outputs if p is not None], [("VIDEO", video)])
        chunking = ChunkOptions(chunk_frames, overlap, max_memory_gb, chunk_align)  # checks the values
        chunked = chunk_frames is not None or max_memory_gb is not None
        options = ReconstructOptions(frames, chunking if chunked else None, parse_anchor(known_distance,
                                     camera_height), gravity_align, device)
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                fail("--device cuda was asked for but no CUDA device is available")
        source = open_frame_source(video)  # a broken input fails here, before any model is loaded
        with _progress() as on_stage:
            net = load_model(model, vggt, device)
            summary = reconstruct_to_outputs(net, source, options, request, on_stage)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    units = "metres" if summary["metric"] else "relative units (not metric)"
    src_w, src_h = summary["source_resolution"]
    console.print(f"read {summary['frames']} frames ({src_w}x{src_h}) from {video} with {summary['backend']}")
    if summary["chunks"]:
        c = summary["chunks"]
        console.print(f"{c['count']} chunks of {c['frames']} frames (overlap {overlap}, {c['align']}); "
                      f"peak memory {summary['peak_rss_gb']:.2f} GB")
    console.print(f"wrote {summary['points']:,} points to {output} ({units}; scale from "
                  f"{summary['scale_source']['detail']}) in {summary['timings']['total_s']:.2f} s")
    for key, what in (("cameras", "cameras"), ("depth_dir", "depth PNGs (uint16 millimetres)"),
                      ("export_dir", "COLMAP + GLB + nerfstudio export"), ("preview", "preview")):
        if summary["outputs"][key]:
            console.print(f"wrote {what} to {summary['outputs'][key]}")
