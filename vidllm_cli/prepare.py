"""`vidllm prepare scannet`: turn ScanNet's own files into the prepared folder that training and `vidllm eval` read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors

app = typer.Typer(help="Prepare datasets for training and evaluation.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.command("scannet")
def scannet(
    scans: Annotated[Path, typer.Option(help="ScanNet `scans/` folder: <scene>/<scene>.txt, _vh_clean_2.ply, "
                                        "_vh_clean_2.0.010000.segs.json, .aggregation.json.")],
    posed_images: Annotated[Path, typer.Option(help="Posed-image folder: <scene>/NNNNN.jpg/.png/.txt, "
                                               "intrinsic.txt (as the ScanNet export scripts write it).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Prepared folder to write (index.json, scenes/, "
                                      "gt_boxes.json); re-running skips scenes whose inputs did not change.")],
    scene_list: Annotated[Optional[Path], typer.Option(
        help="Scene ids to prepare, one per line (e.g. scannetv2_train.txt) [default: every folder in "
        "--scans].")] = None,
    label_map: Annotated[Optional[Path], typer.Option(help="scannetv2-labels.combined.tsv: adds nyu40 ids and "
                                                      "classes to the object labels.")] = None,
    annotations: Annotated[Optional[list[str]], typer.Option(
        "--annotations", "-a", help="TASK=FILE (repeatable), e.g. scanrefer=ScanRefer_filtered_train.json: count "
        "records whose scene was not prepared or whose objects are not in the scan.")] = None,
    allow_missing_alignment: Annotated[bool, typer.Option(
        "--allow-missing-alignment", help="A scene without an axisAlignment (ScanNet test scans) uses identity "
        "instead of failing; recorded per scene in the index.")] = False,
) -> None:
    """Write per-scene object boxes (metres, axis-aligned frame), axis alignments, labels and an index."""
    with user_errors():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from vidllm_core.data.benchmarks import read_scene_list
        from vidllm_core.data.prepare_scannet import check_annotations, discover_scenes, prepare_scannet

        pairs = [_task_file(a) for a in annotations or []]
        for _, path in pairs:
            if not path.is_file():
                fail(f"--annotations file not found: {path}")
        ids = read_scene_list(scene_list) if scene_list is not None else discover_scenes(scans)
        with Progress(TextColumn("prepare scannet"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=False) as bar:
            task = bar.add_task("", total=len(ids))

            def on_scene(scene_id: str, outcome: str) -> None:
                bar.update(task, advance=1, description=f"{scene_id} {outcome}")

            report = prepare_scannet(scans, posed_images, out, scene_ids=ids, label_map=label_map,
                                     allow_missing_alignment=allow_missing_alignment, on_scene=on_scene)
        for scene_id, message in report.failed.items():
            print(f"error: {scene_id}: {message}", file=sys.stderr)
        warnings = list(report.warnings)
        if pairs:
            warnings += check_annotations(out, {name: _load(name, path) for name, path in pairs})
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        print(f"{out}: {len(report.prepared)} scene(s) prepared, {len(report.unchanged)} unchanged, "
              f"{len(report.failed)} failed", file=sys.stderr)
        if report.failed:
            print(f"error: {len(report.failed)} of {len(ids)} scene(s) failed to prepare (listed above; the others "
                  f"are in {out}/index.json)", file=sys.stderr)
            raise typer.Exit(1)


@app.command("proposals")
def proposals(
    source: Annotated[Path, typer.Argument(help="A Chat-Scene-style dump (scannet_mask3d_<split>_attributes.pt or "
                                           ".json: {scene: {\"locs\": [[cx,cy,cz,dx,dy,dz], ...]}}), a JSON "
                                           "{scene: [[...], ...]}, or a folder of <scene>.json / .npy files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <scene>.json files (what --proposals "
                                      "reads).")],
    box_format: Annotated[str, typer.Option(help="center_size ([cx,cy,cz,dx,dy,dz]) or minmax "
                                            "([xmin,ymin,zmin,xmax,ymax,zmax]).")] = "center_size",
) -> None:
    """Convert published 3D object proposals into per-scene files (boxes in the scene's axis-aligned frame)."""
    with user_errors():
        from vidllm_core.data.proposals import convert_proposals

        report = convert_proposals(source, out, box_format=box_format)
        dropped = sum(r["dropped"] for r in report.values())
        if dropped:
            print(f"warning: dropped {dropped} box(es) with NaN / inf coordinates or a size <= 0 in "
                  f"{sum(1 for r in report.values() if r['dropped'])} scene(s)", file=sys.stderr)
        print(f"{out}: {len(report)} scene(s), {sum(r['kept'] for r in report.values())} proposal(s)", file=sys.stderr)


def _task_file(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        fail(f"--annotations takes TASK=FILE (e.g. scanrefer=ScanRefer_filtered_train.json), got {value!r}")
    return name.strip(), Path(path)


def _load(name: str, path: Path) -> list:
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.tasks import get_task

    records, _ = ev.load_items(get_task(name), [path])
    return records
