"""`vidllm ground`: 3D boxes (metres) of what a description refers to, from a video (paper Sec. 3.4 grounding head,
issue 5 item 4); optionally drawn into the reconstructed point cloud (PLY / GLB) and onto the best frame (PNG).

Boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in the reconstruction's world frame (the first camera, OpenCV
axes: y down), or, with `--gravity-align`, in a frame with z up and the floor at z = 0.
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
    proposals: Annotated[Optional[Path], typer.Option("--proposals", help="JSON list of candidate boxes (world "
                                                                           "frame): choose among them.")] = None,
    gravity_align: Annotated[bool, typer.Option("--gravity-align", help="Report boxes with z up, floor at z=0.")] = False,
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
        result = ground(net, scene.encoding, description, multiple=multiple, proposals=props, threshold=threshold)
        boxes_world = result.boxes.astype(np.float64)
        geometry = scene.encoding.geometry
        gravity = None
        boxes_out = boxes_world
        if gravity_align:
            from vidllm_core.pipelines.gravity import gravity_from_geometry, transform_boxes

            gravity = gravity_from_geometry(geometry)
            boxes_out = transform_boxes(boxes_world, gravity.transform)
        if result.truncated:
            warn_truncated("description", net.language.max_question_tokens)
        record = {
            "video": str(video), "description": result.description, "units": "metres",
            "frame": "gravity_aligned" if gravity is not None else "world (first camera, OpenCV axes)",
            "metric": bool(geometry.metric), "scale": float(geometry.scale), "cached": scene.cached,
            "boxes": [{"box": [round(float(v), 4) for v in b], "score": round(float(s), 4)}
                      for b, s in zip(boxes_out, result.scores)],
        }
        if gravity is not None:
            record["gravity"] = {"transform": gravity.transform.round(6).tolist(), "method": gravity.method,
                                 "floor_points": gravity.inliers}
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
                if gravity is not None:
                    pts = transform_points(pts.astype(np.float64), gravity.transform)
                write_boxes_with_points(stage.enter_context(atomic_path(ply)), pts, cols, boxes_out)
            if png is not None:
                from vidllm_core.pipelines.boxes_vis import best_view, draw_overlay

                ext = geometry.extrinsic.double().cpu().numpy()
                intr = geometry.intrinsic.double().cpu().numpy()
                h, w = scene.images.shape[1:3]
                view = best_view(boxes_world[:1], ext, intr, h, w) if len(boxes_world) else 0
                labels = [f"{s:.2f}" for s in result.scores]
                img = draw_overlay(scene.images[view], boxes_world, ext[view], intr[view], labels)
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
