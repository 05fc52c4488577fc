"""One `vidllm eval` invocation as a library call (not in the paper; the metrics are App. A.2's): the option checks
that must fail before any work, the evaluation context, the run record, predictions from a file, a baseline or the
model, scoring and the outputs; shard merging. `vidllm_cli/eval.py` only parses arguments and prints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from vidllm_core.errors import DataError
from vidllm_core.evaluation.context import EvalContext

__all__ = ["EvalRequest", "EvalResult", "merge_runs", "run_eval"]

DEPTH_ALIGNMENTS = ("none", "median", "lstsq")


@dataclass
class EvalRequest:
    """The options of `vidllm eval` (see its --help); `command` is the command line recorded in metrics.json."""

    task: str
    out: Path | None = None
    annotations: list[Path] = field(default_factory=list)
    scenes: Path | None = None
    model: Path | None = None
    predictions: Path | None = None
    baseline: str | None = None
    limit: int | None = None
    shard: str | None = None
    train_annotations: list[Path] = field(default_factory=list)
    gt_boxes: Path | None = None
    prepared: Path | None = None
    allow_missing_alignment: bool = False
    proposals: Path | None = None
    label_map: Path | None = None
    caption_pipeline: str | None = None
    meteor: str = "python"
    depth_align: str = "none"
    seed: int = 0
    frames: int | None = None
    device: str = "cpu"
    command: str = "vidllm eval"


@dataclass
class EvalResult:
    """doc: the metrics.json document. stats: how the predictions file matched the items (None otherwise).
    n_items: items evaluated. missing: items without a prediction after a merge."""

    doc: dict[str, Any]
    stats: Any = None
    n_items: int = 0
    missing: int = 0


def _check(req: EvalRequest, spec: Any) -> tuple[str | None, str | None, str]:
    """(model variant, baseline, source option) or one DataError line; nothing has been written yet."""
    variant, baseline = None, req.baseline
    if baseline is not None and baseline in spec.model_variants:
        if req.model is None:
            raise DataError(f"--baseline {baseline} runs the model changed ({spec.model_variants[baseline]}): "
                            "give --model DIR too")
        variant, baseline = baseline, None
    modes = [m for m, v in (("--model", req.model), ("--predictions", req.predictions), ("--baseline", baseline)) if v]
    if len(modes) != 1:
        raise DataError("choose exactly one of --model DIR, --predictions FILE, --baseline NAME"
                        + (f" (got {', '.join(modes)})" if modes else ""))
    if not req.annotations:
        raise DataError("give the benchmark annotations with --annotations FILE")
    if req.depth_align not in DEPTH_ALIGNMENTS:
        raise DataError(f"--depth-align must be none, median or lstsq, got {req.depth_align!r}")
    if req.device not in ("cpu", "cuda"):
        raise DataError(f"--device must be cpu or cuda, got {req.device!r}")
    if req.model is not None and req.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DataError("--device cuda was asked for but no CUDA device is available")
    return variant, baseline, modes[0]


def _run_info(req: EvalRequest, shard: tuple[int, int] | None, source: str, variant: str | None) -> dict[str, Any]:
    def resolved(p: Path | None) -> str | None:
        return str(Path(p).resolve()) if p else None

    info = {"annotations": [str(Path(p).resolve()) for p in req.annotations], "scenes": resolved(req.scenes),
            "gt_boxes": resolved(req.gt_boxes), "prepared": resolved(req.prepared),
            "allow_missing_alignment": req.allow_missing_alignment, "label_map": resolved(req.label_map),
            "caption_pipeline": req.caption_pipeline, "meteor": req.meteor, "depth_align": req.depth_align,
            "limit": req.limit, "shard": f"{shard[0]}/{shard[1]}" if shard else None, "source": source.lstrip("-"),
            "source_value": resolved(req.model) if req.model else str(req.predictions or req.baseline)}
    if req.model is not None:
        info.update({"model_variant": variant, "frames": req.frames, "device": req.device})
    return info


def run_eval(req: EvalRequest, progress: Callable[[EvalContext], ContextManager[Any]] | None = None) -> EvalResult:
    """Check, run and score one request, writing OUT/predictions.jsonl and OUT/metrics.json.

    progress(ctx): a context manager around the long loops (it may set `ctx.progress`). Raises DataError (one line)
    for bad options before any work; the run folder is locked while the model writes into it.
    """
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.sharding import parse_shard
    from vidllm_core.evaluation.tasks import get_task
    from vidllm_core.io import check_not_inputs, check_output, run_lock

    spec = get_task(req.task)
    if req.out is None:
        raise DataError("give an output directory with -o/--out")
    out = Path(req.out)
    check_output(out, "-o")  # before any work: a result must never be computed and then thrown away
    inputs = [("--annotations", p) for p in req.annotations] + [("--predictions", p) for p in [req.predictions] if p]
    check_not_inputs([("-o", out / ev.PREDICTIONS_FILE), ("-o", out / ev.METRICS_FILE)], inputs)
    variant, baseline, source = _check(req, spec)
    shard = parse_shard(req.shard) if req.shard else None
    records, _ = ev.load_items(spec, req.annotations)
    items = ev.select_items(records, req.limit, shard)
    scenes = req.scenes
    if req.prepared is not None:
        from vidllm_core.data.prepared import load_prepared

        posed_root = load_prepared(req.prepared).posed_images_root   # not a prepared folder: one line
        scenes = scenes if scenes is not None or req.model is None else posed_root
    ctx = EvalContext(scenes_dir=scenes, gt_boxes_path=req.gt_boxes, proposals_dir=req.proposals,
                      prepared_dir=req.prepared, allow_missing_alignment=req.allow_missing_alignment,
                      train_annotations=list(req.train_annotations), label_map=req.label_map,
                      caption_pipeline=req.caption_pipeline, meteor_backend=req.meteor, depth_align=req.depth_align,
                      seed=req.seed, all_records=records, device=req.device, num_frames=req.frames,
                      model_variant=variant)
    run_info = _run_info(req, shard, source, variant)
    with contextlib.ExitStack() as held:
        if req.model is not None:  # the run folder: one writer at a time (predictions.jsonl is appended to)
            held.enter_context(run_lock(out))
        held.enter_context(progress(ctx) if progress is not None else contextlib.nullcontext())
        stats, write_preds = None, True
        try:
            if req.predictions is not None:
                preds, stats = ev.read_predictions(spec, req.predictions, items, records)
            elif baseline is not None:
                preds = ev.baseline_predictions(spec, baseline, items, ctx)
            else:
                model_items = spec.prepare(req.model, out, items, ctx) if spec.prepare is not None else items
                tick = ctx.ticker(f"{spec.name} model", len(items))
                preds, stats, _ = ev.model_predictions(spec, req.model, model_items, out, ctx,
                                                       lambda uid, skipped: tick())
                write_preds = False
            metrics = ev.score(spec, items, preds, ctx)
        except NotImplementedError as exc:
            raise DataError(str(exc)) from None
        run_info["provenance"] = ev.provenance(spec, req.annotations, req.command, predictions=req.predictions,
                                               model=req.model, frames=req.frames, model_variant=variant,
                                               baseline=baseline, seed=req.seed if baseline else None)
        doc = ev.write_outputs(out, spec, items, preds, metrics, stats, ctx, run_info, write_predictions=write_preds)
    return EvalResult(doc, stats, len(items))


def merge_runs(task: str, dirs: list[Path], out: Path, command: str) -> EvalResult:
    """Merge shard output directories of one run into `out` (re-scored over all items)."""
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.tasks import get_task
    from vidllm_core.io import check_not_inputs, check_output

    spec = get_task(task)
    check_output(out, "-o")
    inputs = [("--merge", Path(d) / f) for d in dirs for f in (ev.PREDICTIONS_FILE, ev.METRICS_FILE)]
    check_not_inputs([("-o", out / ev.PREDICTIONS_FILE), ("-o", out / ev.METRICS_FILE)], inputs)
    docs = [ev.load_run(d) for d in dirs]
    base = ev.check_merge(spec, docs, dirs)
    records, _ = ev.load_items(spec, [Path(p) for p in base["annotations"]])
    items = ev.select_items(records, base.get("limit"), None)

    def path(key: str) -> Path | None:
        return Path(base[key]) if base.get(key) else None

    ctx = EvalContext(scenes_dir=path("scenes"), gt_boxes_path=path("gt_boxes"), prepared_dir=path("prepared"),
                      allow_missing_alignment=bool(base.get("allow_missing_alignment")), label_map=path("label_map"),
                      caption_pipeline=base.get("caption_pipeline"), meteor_backend=base.get("meteor") or "python",
                      depth_align=base.get("depth_align") or "none", all_records=records)
    preds: dict = {}
    for d in dirs:
        part, _ = ev.read_predictions(spec, Path(d) / ev.PREDICTIONS_FILE, items, records)
        preds.update(part)
    metrics = ev.score(spec, items, preds, ctx)
    run_info = {**base, "shard": None, "merged_from": [str(Path(d).resolve()) for d in dirs],
                "provenance": {**base["provenance"], "command": command}}
    doc = ev.write_outputs(out, spec, items, preds, metrics, None, ctx, run_info)
    return EvalResult(doc, None, len(items), len(items) - len(preds))
