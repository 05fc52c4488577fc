"""`vidllm eval`: score predictions, a baseline or the model on ScanQA, SQA3D, Scan2Cap, ScanRefer, Multi3DRefer,
Nr3D, Sr3D, depth, pose and reconstruction with the official metric definitions; shard, merge and dry-run."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors

TASK_HELP = "scanqa, sqa3d, scan2cap, scanrefer, multi3drefer, nr3d, sr3d, recon, depth, pose"


def command(
    task: Annotated[str, typer.Argument(help=f"Benchmark: {TASK_HELP}.")],
    merge_dirs: Annotated[Optional[list[Path]], typer.Argument(help="With --merge: the shard output directories.",
                                                               show_default=False)] = None,
    annotations: Annotated[Optional[list[Path]], typer.Option(
        "--annotations", "-a", help="Annotation file (SQA3D: questions file, plus the annotations file or found "
        "beside it; depth/pose/recon: a scene list).")] = None,
    scenes: Annotated[Optional[Path], typer.Option(help="Scene folders: posed images (depth/pose/recon, and "
                                                   "--model on the language tasks) or raw ScanNet scans (GT boxes "
                                                   "for grounding).")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Model directory: run the model, resumably.")] = None,
    predictions: Annotated[Optional[Path], typer.Option(help="Predictions file (JSONL) or directory to score.")] = None,
    baseline: Annotated[Optional[str], typer.Option(help="majority | random | oracle-box (context rows); with "
                                                    "--model on depth/pose/recon: no-alignment.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (metrics.json, "
                                                "predictions.jsonl).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N items of the file.")] = None,
    shard: Annotated[Optional[str], typer.Option(help="I/N: evaluate shard I (0-based) of N, by id hash.")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Merge shard output directories into -o.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics JSON on stdout only.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check annotations (and scenes); run nothing.")] = False,
    train_annotations: Annotated[Optional[list[Path]], typer.Option(
        help="Training annotations for the majority baseline.")] = None,
    gt_boxes: Annotated[Optional[Path], typer.Option(help="GT boxes JSON: scene -> object id -> box (cx cy cz dx dy dz).")] = None,
    prepared: Annotated[Optional[Path], typer.Option(help="Prepared ScanNet folder (vidllm prepare scannet): GT boxes "
                                                     "and axis alignments; its posed images are the default --scenes "
                                                     "of --model.")] = None,
    allow_missing_alignment: Annotated[bool, typer.Option(
        "--allow-missing-alignment", help="A scene without axis alignment uses identity (noted in metrics.json) "
        "instead of failing.")] = False,
    proposals: Annotated[Optional[Path], typer.Option(help="Proposal boxes dir: <scene>.npy / <scene>.json (random "
                                                      "baseline; with --model, scanrefer / multi3drefer / scan2cap "
                                                      "select among them).")] = None,
    label_map: Annotated[Optional[Path], typer.Option(help="scannetv2-labels.combined.tsv (ScanRefer unique/multiple).")] = None,
    caption_pipeline: Annotated[Optional[str], typer.Option(help="Scan2Cap: scan2cap (default), coco, corpus.")] = None,
    depth_align: Annotated[str, typer.Option(help="Depth alignment: none, median, lstsq.")] = "none",
    seed: Annotated[int, typer.Option(help="Seed of the random baseline.")] = 0,
    frames: Annotated[Optional[int], typer.Option(min=1, help="--model: frames sampled per scene [default: the "
                                                  "model's input.num_frames].")] = None,
    device: Annotated[str, typer.Option(help="--model: cpu or cuda.")] = "cpu",
) -> None:
    """Score a benchmark; writes OUT/metrics.json and OUT/predictions.jsonl."""
    with user_errors(), contextlib.ExitStack() as held:  # the lock is released before an error line is printed
        from vidllm_core.evaluation import run as ev
        from vidllm_core.evaluation.context import EvalContext
        from vidllm_core.evaluation.sharding import parse_shard
        from vidllm_core.evaluation.tasks import get_task

        spec = get_task(task)
        if dry_run:
            if not annotations:
                fail("--dry-run needs --annotations FILE")
            report = ev.dry_run(spec, annotations, scenes)
            _print_dry_run(spec.name, report, json_out)
            if report.problems:
                raise typer.Exit(1)
            return
        if out is None:
            fail("give an output directory with -o/--out")
        from vidllm_core.io import check_not_inputs, check_output, run_lock

        check_output(out, "-o")  # before any work: a result must never be computed and then thrown away
        inputs = [("--annotations", p) for p in annotations or []] + [("--predictions", p) for p in [predictions] if p]
        inputs += [("--merge", Path(d) / f) for d in merge_dirs or [] for f in (ev.PREDICTIONS_FILE, ev.METRICS_FILE)]
        check_not_inputs([("-o", out / ev.PREDICTIONS_FILE), ("-o", out / ev.METRICS_FILE)], inputs)
        if merge or merge_dirs:
            if not merge or not merge_dirs:
                fail("merge shard outputs with: vidllm eval TASK --merge DIR1 DIR2 ... -o OUT")
            _merge(spec, merge_dirs, out, json_out)
            return
        variant = None
        if baseline is not None and baseline in spec.model_variants:
            if model is None:
                fail(f"--baseline {baseline} runs the model changed ({spec.model_variants[baseline]}): "
                     "give --model DIR too")
            variant, baseline = baseline, None
        modes = [m for m, v in (("--model", model), ("--predictions", predictions), ("--baseline", baseline)) if v]
        if len(modes) != 1:
            fail("choose exactly one of --model DIR, --predictions FILE, --baseline NAME"
                 + (f" (got {', '.join(modes)})" if modes else ""))
        if not annotations:
            fail("give the benchmark annotations with --annotations FILE")
        shard_t = parse_shard(shard) if shard else None
        if depth_align not in ("none", "median", "lstsq"):
            fail(f"--depth-align must be none, median or lstsq, got {depth_align!r}")
        if device not in ("cpu", "cuda"):
            fail(f"--device must be cpu or cuda, got {device!r}")
        if model is not None and device == "cuda":
            import torch

            if not torch.cuda.is_available():
                fail("--device cuda was asked for but no CUDA device is available")
        records, _ = ev.load_items(spec, annotations)
        items = ev.select_items(records, limit, shard_t)
        if prepared is not None:
            from vidllm_core.data.prepared import load_prepared

            posed_root = load_prepared(prepared).posed_images_root   # not a prepared folder: one line
            scenes = scenes if scenes is not None or model is None else posed_root
        ctx = EvalContext(scenes_dir=scenes, gt_boxes_path=gt_boxes, proposals_dir=proposals,
                          prepared_dir=prepared, allow_missing_alignment=allow_missing_alignment,
                          train_annotations=list(train_annotations or []), label_map=label_map,
                          caption_pipeline=caption_pipeline, depth_align=depth_align, seed=seed, all_records=records,
                          device=device, num_frames=frames, model_variant=variant)
        run_info = {"annotations": [str(Path(p).resolve()) for p in annotations],
                    "scenes": str(scenes.resolve()) if scenes else None,
                    "gt_boxes": str(gt_boxes.resolve()) if gt_boxes else None,
                    "prepared": str(prepared.resolve()) if prepared else None,
                    "allow_missing_alignment": allow_missing_alignment,
                    "label_map": str(label_map.resolve()) if label_map else None,
                    "caption_pipeline": caption_pipeline, "depth_align": depth_align, "limit": limit,
                    "shard": f"{shard_t[0]}/{shard_t[1]}" if shard_t else None, "source": modes[0].lstrip("-"),
                    "source_value": str(Path(model).resolve()) if model else str(predictions or baseline)}
        if model is not None:
            run_info.update({"model_variant": variant, "frames": frames, "device": device})
        if model is not None:  # the run folder: one writer at a time (predictions.jsonl is appended to)
            held.enter_context(run_lock(out))
        with _progress(ctx, quiet=json_out):
            stats = None
            write_preds = True
            if predictions is not None:
                preds, stats = ev.read_predictions(spec, predictions, items, records)
            elif baseline is not None:
                preds = ev.baseline_predictions(spec, baseline, items, ctx)
            else:
                try:
                    model_items = spec.prepare(model, out, items, ctx) if spec.prepare is not None else items
                    tick = ctx.ticker(f"{spec.name} model", len(items))
                    preds, stats, _ = ev.model_predictions(spec, model, model_items, out, ctx,
                                                           lambda uid, skipped: tick())
                except NotImplementedError as exc:
                    fail(str(exc))
                write_preds = False
            if stats is not None:
                _warn_stats(stats, spec.unit, len(items))
            try:
                metrics = ev.score(spec, items, preds, ctx)
            except NotImplementedError as exc:
                fail(str(exc))
        run_info["provenance"] = ev.provenance(spec, annotations, _command_line(), predictions=predictions,
                                               model=model, frames=frames, model_variant=variant,
                                               baseline=baseline, seed=seed if baseline else None)
        doc = ev.write_outputs(out, spec, items, preds, metrics, stats, ctx, run_info, write_predictions=write_preds)
        _report(doc, json_out)


def _merge(spec, dirs: list[Path], out: Path, json_out: bool) -> None:
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.context import EvalContext

    docs = [ev.load_run(d) for d in dirs]
    base = ev.check_merge(spec, docs, dirs)
    records, _ = ev.load_items(spec, [Path(p) for p in base["annotations"]])
    items = ev.select_items(records, base.get("limit"), None)
    ctx = EvalContext(scenes_dir=Path(base["scenes"]) if base.get("scenes") else None,
                      gt_boxes_path=Path(base["gt_boxes"]) if base.get("gt_boxes") else None,
                      prepared_dir=Path(base["prepared"]) if base.get("prepared") else None,
                      allow_missing_alignment=bool(base.get("allow_missing_alignment")),
                      label_map=Path(base["label_map"]) if base.get("label_map") else None,
                      caption_pipeline=base.get("caption_pipeline"), depth_align=base.get("depth_align") or "none",
                      all_records=records)
    preds: dict = {}
    for d in dirs:
        part, _ = ev.read_predictions(spec, Path(d) / ev.PREDICTIONS_FILE, items, records)
        preds.update(part)
    missing = len(items) - len(preds)
    if missing:
        print(f"warning: {missing} of {len(items)} {spec.unit} have no prediction in the shards; scored as wrong",
              file=sys.stderr)
    metrics = ev.score(spec, items, preds, ctx)
    run_info = {**base, "shard": None, "merged_from": [str(Path(d).resolve()) for d in dirs],
                "provenance": {**base["provenance"], "command": _command_line()}}
    doc = ev.write_outputs(out, spec, items, preds, metrics, None, ctx, run_info)
    _report(doc, json_out)


def _command_line() -> str:
    import shlex

    return shlex.join(["vidllm", *sys.argv[1:]])


class _progress:
    """Rich progress bars (with ETA) on stderr for the scorer's long loops; silent when stderr is not a terminal."""

    def __init__(self, ctx, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeRemainingColumn(), console=console, transient=True,
                            disable=quiet or not console.is_terminal)
        ctx.progress = self._add

    def _add(self, label: str, total: int):
        tid = self.bar.add_task(label, total=total)
        return lambda: self.bar.advance(tid)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self.bar.__exit__(*exc)
        return False


def _warn_stats(stats, unit: str, n_items: int) -> None:
    ex = stats.examples
    if stats.unknown:
        print(f"warning: {stats.unknown} prediction(s) have ids not in the evaluated {unit} "
              f"(e.g. {ex.get('unknown')!r}); ignored", file=sys.stderr)
    if stats.duplicates:
        print(f"warning: {stats.duplicates} duplicate prediction id(s) (e.g. {ex.get('duplicate')!r}); "
              "the first record of each is used", file=sys.stderr)
    if stats.missing:
        print(f"warning: {stats.missing} of {n_items} {unit} have no prediction (e.g. {ex.get('missing')!r}); "
              "scored as wrong", file=sys.stderr)


def _flat(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flat(value, f"{name}/"))
        elif not isinstance(value, list):
            rows.append((name, value))
    return rows


def _report(doc: dict, json_out: bool) -> None:
    for note in doc["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if json_out:
        sys.stdout.write(json.dumps(doc["metrics"], indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidllm eval {doc['task']} ({doc['n']} items, {doc['run'].get('source')})", min_width=56)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in _flat(doc["metrics"]):
        text = f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))
        table.add_row(name, text)
    Console(width=100).print(table)


def _print_dry_run(task: str, report, json_out: bool) -> None:
    if json_out:
        sys.stdout.write(json.dumps({"counts": report.counts, "problems": report.problems}, indent=2) + "\n")
        return
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    print(f"{task}: {counts}")
    for p in report.problems:
        print(f"problem: {p}")
    print(f"{len(report.problems)} problem(s) found" if report.problems else "no problems found")
