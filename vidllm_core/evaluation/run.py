"""The library side of `vidllm eval` (issue 4, "Build" 3-4): load a task's items, obtain predictions (file, baseline
or model), score them, write `predictions.jsonl` + `metrics.json`, merge shards, and the dry-run check."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidllm_core.data.benchmarks import Problems, boxes_from_scannet_scan, open_scene, scene_path
from vidllm_core.data.benchmarks.scannet import validate_frames
from vidllm_core.errors import DataError
from vidllm_core.evaluation.context import EvalContext
from vidllm_core.evaluation.predictions import (PredictionStats, ResumeResult, index_predictions, read_records,
                                                write_predictions_resumable, write_records_atomic)
from vidllm_core.evaluation.sharding import select
from vidllm_core.evaluation.tasks import Task
from vidllm_core.io import file_sha256, storage_errors, write_json_atomic

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"


def load_items(task: Task, paths: Sequence[Path], strict: bool = True) -> tuple[list, list[str]]:
    """All records of the annotation file(s) and, in lenient mode, every problem found."""
    problems = Problems(strict=strict)
    records = task.load([Path(p) for p in paths], problems)
    if strict and not records:
        raise DataError(f"no {task.unit} in {', '.join(str(p) for p in paths)}")
    return records, problems.messages


def read_predictions(task: Task, path: Path, items: list, all_records: list) -> tuple[dict[str, Any], PredictionStats]:
    """Parse a predictions file (or, for depth/pose/recon, directory) against the evaluated items."""
    ids = [it.uid for it in items]
    known = {r.uid for r in all_records}
    path = Path(path)
    if task.kind == "geometry" and path.is_dir():
        from vidllm_core.evaluation.geometry import index_prediction_dir

        preds, stats = index_prediction_dir(task.name, path, ids, known)
    else:
        parse = task.parse or _parse_scene_record
        preds, stats = index_predictions(read_records(path), ids, parse, known)
    if stats.matched == 0 and stats.records:
        example = stats.examples.get("unknown") or stats.examples.get("duplicate") or ""
        raise DataError(f"{path}: none of its {stats.records} prediction(s) match the evaluated {task.unit}"
                        f"{f' (e.g. id {example!r})' if example else ''}: wrong split, shard or id format?")
    return preds, stats


def _parse_scene_record(rec: dict, n: int) -> tuple[str, Path]:
    if "scene_id" not in rec or "path" not in rec:
        raise DataError(f"predictions line {n}: expected {{'scene_id': ..., 'path': ...}}")
    return str(rec["scene_id"]), Path(rec["path"])


def baseline_predictions(task: Task, name: str, items: list, ctx: EvalContext) -> dict[str, Any]:
    if name not in task.baselines:
        raise DataError(f"baseline {name!r} is not defined for {task.name}; available: "
                        f"{', '.join(task.baselines) or 'none'}")
    return task.baselines[name](items, ctx)


def model_predictions(task: Task, model_dir: Path, items: list, out_dir: Path, ctx: EvalContext,
                      on_record: Callable[[str, bool], None] | None = None
                      ) -> tuple[dict[str, Any], PredictionStats, ResumeResult]:
    """Run the task's model hook on every item not yet in `out_dir/predictions.jsonl` (resumable), then read the
    file back. Raises NotImplementedError while the model cannot do the task."""
    if task.predict is None:
        raise NotImplementedError(f"`vidllm eval {task.name} --model` is not supported yet: the model cannot do "
                                  f"{task.name} yet; score an existing file with --predictions")
    if ctx.model_variant is not None and ctx.model_variant not in task.model_variants:
        raise DataError(f"baseline {ctx.model_variant!r} is not a model variant of {task.name}; available: "
                        f"{', '.join(task.model_variants) or 'none'}")
    if task.kind == "geometry":
        from vidllm_core.evaluation.model_geometry import PREDICTIONS_SUBDIR, check_scenes_dir, load_model

        check_scenes_dir(ctx, task.name)            # bad input fails before the model loads or anything is written
        load_model(model_dir, ctx, language=False)
        ctx.predictions_dir = Path(out_dir) / PREDICTIONS_SUBDIR
    by_id = {it.uid: it for it in items}
    predict = task.predict
    with storage_errors(out_dir / PREDICTIONS_FILE):  # a full disk: one line naming the file; a re-run resumes
        result = write_predictions_resumable(out_dir / PREDICTIONS_FILE, list(by_id),
                                             lambda uid: predict(model_dir, by_id[uid], ctx), task.id_key, on_record)
    preds, stats = read_predictions(task, out_dir / PREDICTIONS_FILE, items, items)
    return preds, stats, result


def score(task: Task, items: list, preds: dict[str, Any], ctx: EvalContext) -> dict:
    if not items:
        raise DataError(f"no {task.unit} to score (check --limit / --shard)")
    return task.score(items, preds, ctx)


def write_outputs(out_dir: Path, task: Task, items: list, preds: dict[str, Any], metrics: dict,
                  stats: PredictionStats | None, ctx: EvalContext, run: dict, write_predictions: bool = True) -> dict:
    """`predictions.jsonl` (normalised, evaluated ids only) and `metrics.json`, both written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_predictions:
        write_records_atomic(out_dir / PREDICTIONS_FILE,
                             (task.encode(it.uid, preds[it.uid]) for it in items if it.uid in preds))
    doc = {"task": task.name, "n": len(items), "metrics": _jsonable(metrics),
           "predictions": stats.as_dict() if stats else None, "notes": list(ctx.notes), "run": run}
    write_json_atomic(out_dir / METRICS_FILE, doc)
    return doc


def _jsonable(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_run(out_dir: Path) -> dict:
    path = Path(out_dir) / METRICS_FILE
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(doc, dict) or "run" not in doc or "task" not in doc:
        raise DataError(f"{out_dir}: not a `vidllm eval` output directory (no readable {METRICS_FILE})")
    if not (Path(out_dir) / PREDICTIONS_FILE).is_file():
        raise DataError(f"{out_dir}: no {PREDICTIONS_FILE} to merge")
    return doc


# What must be equal in every shard of one merge: the items (task, annotation contents, --limit) and what made the
# predictions (predictions file contents, or model weights + frames + variant, or baseline + seed).
MERGE_IDENTITY = ("task", "annotations_sha256", "source", "predictions_sha256", "model_weights_sha256", "frames",
                  "model_variant", "baseline", "seed")


def provenance(task: Task, annotations: Sequence[Path], command: str, *, predictions: Path | None = None,
               model: Path | None = None, frames: int | None = None, model_variant: str | None = None,
               baseline: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """What a metrics.json was computed from: content hashes of the annotation files and of the predictions (file,
    or every file of a prediction folder) or the model's weights, the sampling options, the vidllm version and the
    command line. `--merge` refuses shards whose identity (`MERGE_IDENTITY`) differs."""
    from vidllm_core import __version__

    prov: dict[str, Any] = {"task": task.name, "annotations_sha256": [file_sha256(p) for p in annotations],
                            "source": "model" if model else "predictions" if predictions else "baseline",
                            "vidllm_version": __version__, "command": command}
    if predictions is not None:
        prov["predictions_sha256"] = _content_sha256(Path(predictions))
    if model is not None:
        prov.update(model=str(Path(model).resolve()), model_weights_sha256=model_weights_sha256(Path(model)),
                    frames=frames, model_variant=model_variant)
    if baseline is not None:
        prov.update(baseline=baseline, seed=seed)
    return prov


def model_weights_sha256(model_dir: Path) -> str:
    """sha256 over a model directory's config.json and *.safetensors files (name + content hash of each)."""
    files = sorted(p for p in Path(model_dir).iterdir() if p.is_file() and
                   (p.name == "config.json" or p.suffix == ".safetensors"))
    return _names_and_hashes(files, Path(model_dir))


def _content_sha256(path: Path) -> str:
    if path.is_dir():
        return _names_and_hashes(sorted(p for p in path.rglob("*") if p.is_file()), path)
    return file_sha256(path)


def _names_and_hashes(files: Sequence[Path], root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(root).as_posix()}\0{file_sha256(f)}\n".encode("utf-8"))
    return digest.hexdigest()


def check_merge(task: Task, docs: list[dict], dirs: Sequence[Path]) -> dict:
    """All shard outputs must be of this task, made from the same items and the same predictions / model /
    baseline (their recorded provenance, `MERGE_IDENTITY`), and cover every shard of one `I/N` split exactly once.
    Returns the shared run description (without the shard)."""
    if len(docs) < 1:
        raise DataError("--merge needs at least one output directory")
    base = {k: v for k, v in docs[0]["run"].items() if k != "shard"}
    shards = []
    for d, doc in zip(dirs, docs):
        if doc["task"] != task.name:
            raise DataError(f"{d}: is a {doc['task']} output, not {task.name}")
        if not isinstance(doc["run"].get("provenance"), dict):
            raise DataError(f"{d}: its metrics.json records no provenance (written by an older vidllm); re-run that "
                            "shard to merge it")
        run = {k: v for k, v in doc["run"].items() if k != "shard"}
        for key in ("annotations", "limit", "source"):
            if run.get(key) != base.get(key):
                raise DataError(f"{d}: {key} {run.get(key)!r} differs from {dirs[0]}'s {base.get(key)!r}")
        prov, base_prov = run["provenance"], base["provenance"]
        for key in MERGE_IDENTITY:
            if prov.get(key) != base_prov.get(key):
                raise DataError(f"{d} and {dirs[0]} were not made from the same {key.replace('_', ' ')} "
                                f"({_short(prov.get(key))} vs {_short(base_prov.get(key))}); merging them would mix "
                                "two runs in one score")
        shards.append(doc["run"].get("shard"))
    if all(s is None for s in shards):
        raise DataError("--merge combines the outputs of `--shard I/N` runs; "
                        f"{'these are' if len(shards) > 1 else 'this is an'} unsharded output"
                        f"{'s' if len(shards) > 1 else ''}: nothing to merge")
    if any(s is not None for s in shards):
        if any(s is None for s in shards):
            raise DataError("cannot merge sharded and unsharded outputs")
        ns = {int(s.split("/")[1]) for s in shards}
        if len(ns) != 1:
            raise DataError(f"shards come from different splits: {', '.join(shards)}")
        n = ns.pop()
        got = sorted(int(s.split("/")[0]) for s in shards)
        if len(set(got)) != len(got):
            raise DataError(f"shard given twice: {', '.join(shards)}")
        absent = sorted(set(range(n)) - set(got))
        if absent:
            raise DataError(f"shard(s) {', '.join(f'{i}/{n}' for i in absent)} missing from the merge")
    return base


def _short(value: Any) -> str:
    """A value for a message: sha256 hex digests cut to 12 characters."""
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)[:12] if len(str(value)) == 64 else str(value)


def select_items(records: list, limit: int | None, shard: tuple[int, int] | None) -> list:
    return select(records, limit, shard)


# --- dry run ----------------------------------------------------------------------------------------------------

@dataclass
class DryRunReport:
    counts: dict[str, int]
    problems: list[str]


def dry_run(task: Task, paths: Sequence[Path], scenes_dir: Path | None) -> DryRunReport:
    """Parse the annotations (and scenes, if given) leniently; count items, objects and scenes; list problems."""
    records, problems = load_items(task, paths, strict=False)
    scenes = sorted({r.scene_id for r in records})
    counts = {task.unit: len(records), "scenes": len(scenes)}
    objects: set = set()
    for r in records:
        if hasattr(r, "object_ids"):
            objects.update((r.scene_id, o) for o in r.object_ids)
        elif hasattr(r, "object_id"):
            objects.add((r.scene_id, r.object_id))
        elif hasattr(r, "target_id"):
            objects.add((r.scene_id, r.target_id))
    if objects:
        counts["objects"] = len(objects)
    if not records and not problems:
        problems.append(f"no {task.unit} found")
    if scenes_dir is not None and not Path(scenes_dir).is_dir():
        problems.append(f"scenes directory not found: {scenes_dir}")
    elif scenes_dir is not None:
        frames = 0
        lenient = Problems(strict=False)
        found = 0
        for s in scenes:
            try:
                if task.kind in ("grounding", "multi", "caption"):   # raw scans: GT boxes of the referred objects
                    boxes = boxes_from_scannet_scan(scene_path(scenes_dir, s), s)
                    absent = sorted({o for sc, o in objects if sc == s and o not in boxes})
                    if absent:
                        lenient.add(f"scene {s}: no GT box for object id(s) {', '.join(map(str, absent))}")
                else:
                    frames += validate_frames(open_scene(scenes_dir, s, lenient), lenient)
                found += 1
            except DataError as exc:
                lenient.add(str(exc))
        counts["scenes_found"] = found
        if task.kind not in ("grounding", "multi", "caption"):
            counts["frames_with_valid_pose"] = frames
        problems.extend(lenient.messages)
    return DryRunReport(counts, problems)
