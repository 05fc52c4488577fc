"""`vidllm ground`: 3D boxes (metres) of what a description refers to, from a video (paper Sec. 3.4 grounding head,
issue 5 item 4); optionally drawn into the reconstructed point cloud (PLY / GLB) and onto the best frame (PNG).

Boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in the box frame estimated from the reconstruction
(`geometry.box_frame`: z up, x along the room's wall nearest the first camera's right axis, origin at the first
camera), or, with `--gravity-align`, in the same axes shifted so the floor is at z = 0. The output states the frame
and its 4x4 map from the reconstruction's world (the first camera, OpenCV axes).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidllm_cli.common import console, fail, user_errors
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
    video: Annotated[Path, typer.Argument(help="Video file or folder of frames.")],
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
    with user_errors():
        import numpy as np

        from vidllm_core.io import atomic_path
        from vidllm_core.language.prompts import clean_text
        from vidllm_core.pipelines.language import ground

        clean_text(description, "description")
        props = _read_proposals(proposals) if proposals is not None else None
        net = load_language_model(model, device)  # type: ignore[arg-type]
        scene = encode(net, video, frames, open_cache(cache_dir, no_cache), device)
        from vidllm_core.geometry.box_frame import estimate_box_frame

        geometry = scene.encoding.geometry
        frame = estimate_box_frame(geometry)
        if props is not None and gravity_align:
            props = frame.boxes_from_scene(props)
        result = ground(net, scene.encoding, description, multiple=multiple, proposals=props, threshold=threshold,
                        frame=frame)
        boxes_frame = result.boxes.astype(np.float64)  # box frame
        out_from_world = frame.box_from_world
        boxes_out = boxes_frame
        frame_doc = frame.describe()
        if gravity_align:
            out_from_world = frame.scene_from_world
            boxes_out = frame.boxes_to_scene(boxes_frame)
            frame_doc = {"name": "gravity_aligned: z up, floor at z = 0, x/y along the room's walls",
                         "source": frame.source, "from_reconstruction": np.round(out_from_world, 9).tolist()}
        if result.truncated:
            warn_truncated("description", net.language.max_question_tokens)
        record = {
            "video": str(video), "description": result.description, "units": "metres", "frame": frame_doc,
            "metric": bool(geometry.metric), "scale": float(geometry.scale), "cached": scene.cached,
            "boxes": [{"box": [round(float(v), 4) for v in b], "score": round(float(s), 4)}
                      for b, s in zip(boxes_out, result.scores)],
        }
        with contextlib.ExitStack() as stage:  # every output is renamed into place only if all succeed
            if output is not None:
                tmp = stage.enter_context(atomic_path(output))
                tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            if ply is not None:
                from vidllm_core.pipelines.boxes_vis import write_boxes_with_points
                from vidllm_core.pipelines.gravity import transform_points

                pts = geometry.world_points.reshape(-1, 3).float().cpu().numpy()
                conf = geometry.depth_conf.reshape(-1).float().cpu().numpy()
                cols = scene.images.reshape(-1, 3)
                keep = np.isfinite(pts).all(1) & (conf >= np.median(conf))
                pts, cols = pts[keep], cols[keep]
                pts = transform_points(pts.astype(np.float64), out_from_world)
                write_boxes_with_points(stage.enter_context(atomic_path(ply)), pts, cols, boxes_out)
            if png is not None:
                from vidllm_core.pipelines.boxes_vis import best_view, draw_overlay

                ext = geometry.extrinsic.double().cpu().numpy() @ np.linalg.inv(frame.box_from_world)  # cam <- box
                intr = geometry.intrinsic.double().cpu().numpy()
                h, w = scene.images.shape[1:3]
                view = best_view(boxes_frame[:1], ext, intr, h, w) if len(boxes_frame) else 0
                labels = [f"{s:.2f}" for s in result.scores]
                img = draw_overlay(scene.images[view], boxes_frame, ext[view], intr[view], labels)
                img.save(stage.enter_context(atomic_path(png)), format="PNG")
                record["png_frame"] = scene.source_frames[view]
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
