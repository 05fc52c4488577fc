"""`vidllm caption`: describe an object given by a box or a point in metres (Scan2Cap prompt), or the whole scene
(paper Sec. 3.3, issue 5 item 4). Locations are in the reconstruction's world frame (the first camera)."""

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
    video: Annotated[Path, typer.Argument(help="Video file or folder of frames.")],
    box: Annotated[Optional[str], typer.Option("--box", help="Object box cx,cy,cz,dx,dy,dz (metres).")] = None,
    point: Annotated[Optional[str], typer.Option("--point", help="A point on the object x,y,z (metres).")] = None,
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
    if sum(x is not None and x is not False for x in (box, point, scene_caption or None)) > 1:
        fail("give only one of --box, --point, --scene")
    box_v = parse_numbers(box, 6, "--box") if box is not None else None
    point_v = parse_numbers(point, 3, "--point") if point is not None else None
    if box_v is not None and not all(v > 0 for v in box_v[3:]):
        fail(f"--box sizes dx,dy,dz must be positive, got {box_v[3:]}")
    check_inputs(video, model, device, cache_dir, no_cache)
    with user_errors():
        from vidllm_core.pipelines.language import caption

        net = load_language_model(model, device)  # type: ignore[arg-type]
        scene = encode(net, video, frames, open_cache(cache_dir, no_cache), device)
        result = caption(net, scene.encoding, box=box_v, point=point_v, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed)
    if as_json:
        typer.echo(json.dumps({"video": str(video), "cached": scene.cached, "box": box_v, "point": point_v,
                               "prompt": result.question, "caption": result.answer,
                               "total_s": round(time.perf_counter() - t_start, 4)}))
        return
    typer.echo(result.answer)
    console.print(f"caption in {time.perf_counter() - t_start:.2f} s")
