"""`vidllm caption`: describe an object given by a box or a point in metres (Scan2Cap prompt), every box of a
proposals file, or the whole scene (paper Sec. 3.3, issue 5 item 4). Locations are in the box frame that
`vidllm ground` answers in (`geometry.box_frame`, estimated from the reconstruction: z up, x along a wall, origin at
the first camera); the output states it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors
from vidllm_cli.scene import (CacheDirOpt, DeviceOpt, FramesOpt, JsonOpt, MaxNewOpt, ModelOpt, NoCacheOpt, SeedOpt,
                              TempOpt, check_inputs, encode, load_language_model, open_cache, parse_numbers)


def command(
    video: Annotated[Path, typer.Argument(help="Video file, image folder or ScanNet posed-images scene.")],
    box: Annotated[Optional[str], typer.Option("--box", help="Object box cx,cy,cz,dx,dy,dz (metres).")] = None,
    point: Annotated[Optional[str], typer.Option("--point", help="A point on the object x,y,z (metres).")] = None,
    proposals: Annotated[Optional[Path], typer.Option(
        "--proposals", help="Caption every box of a JSON file (a list of boxes, or {\"boxes\": [...]}, box frame), "
        "e.g. `vidllm ground -o`'s.")] = None,
    scene_caption: Annotated[bool, typer.Option("--scene", help="Describe the whole scene (default).")] = False,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    max_new_tokens: MaxNewOpt = 48,
    temperature: TempOpt = 0.0,
    seed: SeedOpt = 0,
    frames: FramesOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Caption an object (--box / --point) or the scene (--scene) in VIDEO."""
    t_start = time.perf_counter()
    if sum(x is not None and x is not False for x in (box, point, proposals, scene_caption or None)) > 1:
        fail("give only one of --box, --point, --proposals, --scene")
    box_v = parse_numbers(box, 6, "--box") if box is not None else None
    point_v = parse_numbers(point, 3, "--point") if point is not None else None
    if box_v is not None and not all(v > 0 for v in box_v[3:]):
        fail(f"--box sizes dx,dy,dz must be positive, got {box_v[3:]}")
    check_inputs(video, model, device, cache_dir, no_cache)
    with user_errors():
        from vidllm_core.geometry.box_frame import estimate_box_frame
        from vidllm_core.pipelines.language import caption

        boxes = _read_boxes(proposals) if proposals is not None else None
        net = load_language_model(model, device)  # type: ignore[arg-type]
        scene = encode(net, video, frames, open_cache(cache_dir, no_cache), device)
        frame = estimate_box_frame(scene.encoding.geometry)
        kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, frame=frame)
        if boxes is not None:
            captions = [caption(net, scene.encoding, box=[float(v) for v in b], **kw).answer for b in boxes]
        else:
            result = caption(net, scene.encoding, box=box_v, point=point_v, **kw)
    if boxes is not None:
        rows = [{"box": [round(float(v), 4) for v in b], "caption": c} for b, c in zip(boxes, captions)]
        if as_json:
            typer.echo(json.dumps({"video": str(video), "cached": scene.cached, "frame": frame.describe(),
                                   "captions": rows, "total_s": round(time.perf_counter() - t_start, 4)}))
            return
        for r in rows:
            typer.echo(f"box {r['box']}: {r['caption']}")
        console.print(f"{len(rows)} caption(s) in {time.perf_counter() - t_start:.2f} s")
        return
    if as_json:
        typer.echo(json.dumps({"video": str(video), "cached": scene.cached, "box": box_v, "point": point_v,
                               "frame": frame.describe(), "prompt": result.question, "caption": result.answer,
                               "total_s": round(time.perf_counter() - t_start, 4)}))
        return
    typer.echo(result.answer)
    console.print(f"caption in {time.perf_counter() - t_start:.2f} s")


def _read_boxes(path: Path) -> "list":
    """Valid boxes of a proposals JSON (a list of boxes, of {"box": ...}, or {"boxes": [...]}); invalid rows (NaN,
    size <= 0) are dropped with a warning line; no valid box is one error line."""
    import sys

    from vidllm_core.data.proposals import validate_boxes
    from vidllm_core.errors import DataError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"proposals file not found: '{path}'")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"proposals file '{path}' is not JSON: {exc}")
    if isinstance(data, dict):
        data = data.get("boxes", [])
    if isinstance(data, list):
        data = [b["box"] if isinstance(b, dict) and "box" in b else b for b in data]
    boxes, _, dropped = validate_boxes(data, str(path))
    if dropped:
        print(f"warning: {path}: dropped {dropped} box(es) with NaN / inf coordinates or a size <= 0",
              file=sys.stderr)
    if not len(boxes):
        raise DataError(f"proposals file '{path}' holds no valid box")
    return list(boxes)
