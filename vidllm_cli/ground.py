"""`vidllm ground`: 3D boxes (metres) of what a description refers to, from a video (paper Sec. 3.4 grounding head,
issue 5 item 4); optionally drawn into the reconstructed point cloud (PLY / GLB) and onto the best frame (PNG).

Boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in the box frame estimated from the reconstruction
(`geometry.box_frame`: z up, x along the room's wall nearest the first camera's right axis, origin at the first
camera), or, with `--gravity-align`, in the same axes shifted so the floor is at z = 0. The output states the frame
and its 4x4 map from the reconstruction's world (the first camera, OpenCV axes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidllm_cli.common import check_output_files, console, fail, user_errors
from vidllm_cli.scene import (CacheDirOpt, DeviceOpt, FramesOpt, JsonOpt, ModelOpt, NoCacheOpt, check_inputs, encode,
                              load_language_model, open_cache, warn_truncated)


def _read_proposals(path: Path) -> Any:
    import numpy as np

    from vidllm_core.errors import DataError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"proposals file not found: '{path}'")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"proposals file '{path}' is not JSON: {exc}")
    if isinstance(data, dict):
        data = data.get("boxes", data.get("proposals"))
    try:
        arr = np.asarray([b["box"] if isinstance(b, dict) else b for b in data], dtype=np.float64).reshape(-1, 6)
    except (TypeError, ValueError, KeyError):
        raise DataError(f"proposals file '{path}' must hold a list of [cx, cy, cz, dx, dy, dz] boxes") from None
    if not len(arr):
        raise DataError(f"proposals file '{path}' holds no box")
    return arr


def _check_suffix(path: Optional[Path], allowed: tuple[str, ...], option: str) -> None:
    if path is not None and path.suffix.lower() not in allowed:
        fail(f"{option} must end in {' or '.join(allowed)}, got '{path}'")


def command(
    video: Annotated[Path, typer.Argument(help="Video file, image folder or ScanNet posed-images scene.")],
    description: Annotated[str, typer.Argument(help="What to find, e.g. \"the black chair next to the desk\".")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the boxes (JSON).")] = None,
    ply: Annotated[Optional[Path], typer.Option("--ply", help="Point cloud + box wireframes (.ply or .glb).")] = None,
    png: Annotated[Optional[Path], typer.Option("--png", help="Boxes drawn on the frame where best seen (.png).")] = None,
    multiple: Annotated[bool, typer.Option("--multiple", help="Zero, one or many targets (Multi3DRefer).")] = False,
    proposals: Annotated[Optional[Path], typer.Option("--proposals", help="JSON list of candidate boxes (in the "
                                                                           "output frame): choose among them.")] = None,
    gravity_align: Annotated[bool, typer.Option("--gravity-align", help="Report boxes with the floor at z=0.")] = False,
    threshold: Annotated[Optional[float], typer.Option("--threshold", min=0.0, max=1.0,
                                                       help="Score kept with --multiple [default: the model's].")] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    frames: FramesOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Find the 3D box(es) of DESCRIPTION in VIDEO."""
    t_start = time.perf_counter()
    _check_suffix(output, (".json",), "--output")
    _check_suffix(ply, (".ply", ".glb"), "--ply")
    _check_suffix(png, (".png",), "--png")
    check_inputs(video, model, device, cache_dir, no_cache)
    check_output_files([("--output", output), ("--ply", ply), ("--png", png)],
                       [("VIDEO", video), ("--proposals", proposals)])
    with user_errors():
        from vidllm_core.language.prompts import clean_text
        from vidllm_core.pipelines.ground_scene import ground_scene, write_ground_outputs

        clean_text(description, "description")
        props = _read_proposals(proposals) if proposals is not None else None
        net = load_language_model(model, device)  # type: ignore[arg-type]
        scene = encode(net, video, frames, open_cache(cache_dir, no_cache), device)
        grounded = ground_scene(net, scene, description, multiple=multiple, proposals=props, threshold=threshold,
                                gravity_align=gravity_align)
        if grounded.result.truncated:
            warn_truncated("description", net.language.max_question_tokens)
        write_ground_outputs(grounded, scene, output=output, ply=ply, png=png)
    record = grounded.record
    if as_json:
        typer.echo(json.dumps(record))
        return
    if not record["boxes"]:
        typer.echo("no matching object")
    for b in record["boxes"]:
        typer.echo(f"box {b['box']} score {b['score']:.2f}")
    for what, path in (("boxes", output), ("point cloud + boxes", ply), ("overlay", png)):
        if path is not None:
            console.print(f"wrote {what} to {path}")
    console.print(f"grounded in {time.perf_counter() - t_start:.2f} s")
