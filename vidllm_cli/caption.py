"""`vidllm caption`: describe an object given by a box or a point in metres (Scan2Cap prompt), every box of a
proposals file, or the whole scene (paper Sec. 3.3, issue 5 item 4). Locations are in the box frame that
`vidllm ground` answers in (`geometry.box_frame`, estimated from the reconstruction: z up, x along a wall, origin at
the first camera); the output states it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors
from vidllm_cli.scene import (CacheDirOpt, DeviceOpt, FramesOpt, JsonOpt, MaxNewOpt, ModelOpt, NoCacheOpt, SeedOpt,
                              TempOpt, check_inputs, encode, load_language_model, open_cache, parse_numbers)


FRAME_HELP = ("box frame of `vidllm ground` (z up, x along a wall, origin at the first camera; a --proposals file "
              "written by `ground --gravity-align` states its frame and is mapped)")


def command(
    video: Annotated[Path, typer.Argument(help="Video file, image folder or ScanNet posed-images scene.")],
    box: Annotated[Optional[str], typer.Option("--box", help=f"Object box cx,cy,cz,dx,dy,dz in metres, {FRAME_HELP}.")
                   ] = None,
    point: Annotated[Optional[str], typer.Option("--point", help="A point on the object x,y,z (metres, box frame).")
                     ] = None,
    proposals: Annotated[Optional[Path], typer.Option(
        "--proposals", help="Caption every box of a JSON file (a list of boxes, or {\"boxes\": [...]} as `vidllm "
        "ground -o` writes); --json prints one JSON line per box.")] = None,
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
    """Caption an object (--box / --point, box frame), every box of a file (--proposals) or the scene in VIDEO."""
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
        from vidllm_core.pipelines.caption_scene import caption_scene, read_box_file
        from vidllm_core.pipelines.language import caption

        boxes = read_box_file(proposals) if proposals is not None else None
        net = load_language_model(model, device)  # type: ignore[arg-type]
        scene = encode(net, video, frames, open_cache(cache_dir, no_cache), device)
        frame = estimate_box_frame(scene.encoding.geometry)
        kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, frame=frame)
        if boxes is not None:
            done = caption_scene(net, scene.encoding, boxes.boxes, index=boxes.index,
                                 gravity_aligned=boxes.gravity_aligned, **kw)
        else:
            result = caption(net, scene.encoding, box=box_v, point=point_v, **kw)
    head = {"video": str(video), "cached": scene.cached, "frame": frame.describe()}
    if boxes is not None:
        _warn_boxes(boxes, done)
        for r in done.rows:
            typer.echo(json.dumps({**head, **r}) if as_json else f"box {r['index']} {r['box']}: {r['caption']}")
        console.print(f"{len(done.rows)} caption(s) in {time.perf_counter() - t_start:.2f} s; boxes in the box frame")
        return
    if as_json:
        typer.echo(json.dumps({**head, "box": box_v, "point": point_v, "prompt": result.question,
                               "caption": result.answer, "total_s": round(time.perf_counter() - t_start, 4)}))
        return
    typer.echo(result.answer)
    console.print(f"caption in {time.perf_counter() - t_start:.2f} s" + ("; location in the box frame"
                                                                        if box_v or point_v else ""))


def _warn_boxes(boxes, done) -> None:  # noqa: ANN001
    """Counted warnings (stderr) for the rows of a --proposals file that were dropped or not captioned."""
    if boxes.dropped:
        print(f"warning: {boxes.path}: dropped {boxes.dropped} box(es) with NaN / inf coordinates or a size <= 0",
              file=sys.stderr)
    if done.skipped:
        first, why = next(iter(done.skipped.items()))
        print(f"warning: {len(done.skipped)} box(es) not captioned (e.g. box {first}: {why})", file=sys.stderr)
