"""Task registry for `vidllm eval`: TASK -> loader, prediction parser, scorer, baselines and model hook
(benchmarks of the paper's Table 2-4; scoring rules in ../shared/docs/METRICS.md and FORMATS.md)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.data.benchmarks import (EVAL_TYPES, Problems, find_sqa3d_pair, load_multi3drefer, load_referit3d,
                                         load_scan2cap, load_scanqa, load_scanrefer, load_sqa3d, read_scene_list)
from vidllm_core.data.benchmarks.sqa3d import QUESTION_TYPES
from vidllm_core.errors import DataError
from vidllm_core.evaluation.context import EvalContext, metric
from vidllm_core.tasks import TASK_SPECS

Loader = Callable[[Sequence[Path], Problems], list]
Parser = Callable[[dict, int], tuple[str, Any]]
Scorer = Callable[[list, Mapping[str, Any], EvalContext], dict]
Baseline = Callable[[list, EvalContext], dict[str, Any]]
Encoder = Callable[[str, Any], dict]
ModelHook = Callable[[Path, Any, EvalContext], Mapping[str, Any]]


@dataclass(frozen=True)
class Task:
    """One benchmark. `predict` is the model hook (model dir, record, context) -> prediction record fields; None
    until the model can do the task (then `vidllm eval --model` says "not supported yet"). `model_variants` are
    baselines that run the model changed (`--model DIR --baseline NAME`), name -> one-line description."""

    name: str
    kind: str                       # qa | caption | grounding | multi | referit | geometry
    unit: str                       # what one item is ("questions", "objects", ...)
    id_key: str                     # id field of the normalised predictions.jsonl records
    load: Loader
    parse: Parser | None            # record-based predictions; None for geometry (a directory)
    encode: Encoder                 # normalised prediction -> predictions.jsonl record
    score: Scorer
    baselines: Mapping[str, Baseline] = field(default_factory=dict)
    predict: ModelHook | None = None
    # Optional, with `predict`: (model dir, out dir, items, context) -> items in run order, after checking the run
    # can start (nothing written before); the language tasks group records by scene (one vision pass per scene).
    prepare: Callable[[Path, Path, list, EvalContext], list] | None = None
    predictions_help: str = ""
    model_variants: Mapping[str, str] = field(default_factory=dict)
    # Stage-2 training samples of one record: (record, GT-box lookup, max question tokens) -> list of
    # `training.language_samples.LanguageSample`; None for tasks that are not trained on (geometry).
    train: Callable[[Any, Any, int], list] | None = None


# --- helpers -----------------------------------------------------------------------------------------------------

def _one(paths: Sequence[Path], task: str) -> Path:
    if len(paths) != 1:
        raise DataError(f"{task} takes one --annotations file, got {len(paths)}")
    return Path(paths[0])


def _field(rec: dict, n: int, *names: str) -> Any:
    for name in names:
        if name in rec:
            return rec[name]
    raise DataError(f"predictions line {n}: missing field {' / '.join(repr(x) for x in names)}")


def _boxes(value: Any, n: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros((1, 1))
    if arr.ndim == 1 and arr.size == 6:
        arr = arr[None]
    if arr.size == 0:
        return np.zeros((0, 6))
    if arr.ndim != 2 or arr.shape[1] != 6 or not np.isfinite(arr).all() or (arr[:, 3:] < 0).any():
        raise DataError(f"predictions line {n}: boxes must be [[cx, cy, cz, dx, dy, dz], ...] with finite numbers "
                        "and non-negative sizes")
    return arr


def _box_list(arr: np.ndarray) -> list[list[float]]:
    return [[float(x) for x in b] for b in np.asarray(arr).reshape(-1, 6)]


def _majority(answers: Sequence[str]) -> str:
    counts = Counter(answers)
    best = max(counts.values())
    return min(a for a, c in counts.items() if c == best)   # ties: alphabetical, so the baseline is deterministic


# --- QA (ScanQA, SQA3D) ------------------------------------------------------------------------------------------

def _parse_qa(rec: dict, n: int) -> tuple[str, str]:
    uid = _field(rec, n, "question_id", "id")
    answer = _field(rec, n, "answer", "pred", "prediction")
    if not isinstance(answer, str):
        raise DataError(f"predictions line {n}: answer must be a string, got {type(answer).__name__}")
    return str(uid), answer


def _score_qa(records: list, preds: Mapping[str, str], ctx: EvalContext, typed: bool) -> dict:
    unanswered = [r.uid for r in records if not r.answers]
    if unanswered:
        raise DataError(f"{len(unanswered)} question(s) have no GT answers (a test split? e.g. {unanswered[0]!r}); "
                        "nothing to score against")
    present = [r for r in records if r.uid in preds]
    per_item: dict[str, dict[str, float]] = {}
    if present:
        res = metric("qa_scores")({r.uid: preds[r.uid] for r in present}, {r.uid: list(r.answers) for r in present})
        per_item = res["per_item"]
    keys = ("EM@1", "EM@1_raw", "refined_EM@1")

    def means(group: list) -> dict:
        # missing predictions count as wrong: their per-item score is 0
        return {**{k: sum(per_item.get(r.uid, {}).get(k, 0.0) for r in group) / len(group) for k in keys},
                "n": len(group)}

    out = means(records)
    out.update(_qa_text_scores(records, preds, ctx))
    if typed:
        groups: dict[str, list] = {}
        for r in records:
            groups.setdefault(r.question_type, []).append(r)
        out["per_type"] = {t: means(groups[t]) for t in QUESTION_TYPES if t in groups}
    return out


def _qa_text_scores(records: list, preds: Mapping[str, str], ctx: EvalContext) -> dict:
    """The paper's Table-1 text columns (CIDEr, BLEU-4, METEOR, ROUGE-L) of the top-1 answer against all GT answers,
    with ScanQA's own pre-processing (PTB tokens) unless --caption-pipeline says otherwise; a missing answer is ""."""
    pipeline = ctx.caption_pipeline or "coco"
    res = metric("caption_scores")({r.uid: preds.get(r.uid, "") for r in records},
                                   {r.uid: list(r.answers) for r in records},
                                   pipeline=pipeline, meteor_backend=ctx.meteor_backend)
    return {"CIDEr": res["CIDEr"], "BLEU-4": res["Bleu_4"], "METEOR": res["METEOR"], "ROUGE-L": res["ROUGE_L"],
            "text_pipeline": pipeline, "meteor_backend": ctx.meteor_backend}


def _qa_majority(records: list, ctx: EvalContext, loader: Loader) -> dict[str, str]:
    if ctx.train_annotations:
        source = loader(ctx.train_annotations, Problems())
    else:
        ctx.note("majority baseline: no --train-annotations, so the majority answer comes from the evaluated file "
                 "itself (not held out: an optimistic context row)")
        source = ctx.all_records or records
    answers = [r.answers[0] for r in source if r.answers]
    if not answers:
        raise DataError("majority baseline: the training annotations have no answers")
    best = _majority(answers)
    ctx.note(f"majority answer: {best!r}")
    return {r.uid: best for r in records}


def _load_scanqa(paths: Sequence[Path], problems: Problems) -> list:
    return load_scanqa(_one(paths, "scanqa"), problems)


def _load_sqa3d(paths: Sequence[Path], problems: Problems) -> list:
    questions, annotations = find_sqa3d_pair(list(paths))
    if annotations is None:
        problems.add(f"{questions}: no SQA3D annotations file given or found beside it (answers unknown)")
    return load_sqa3d(questions, annotations, problems)


# --- Scan2Cap -------------------------------------------------------------------------------------------------

def _parse_caption(rec: dict, n: int) -> tuple[str, dict]:
    key = _field(rec, n, "key", "id")
    caption = _field(rec, n, "caption", "pred", "prediction")
    if not isinstance(caption, str):
        raise DataError(f"predictions line {n}: caption must be a string")
    box = _boxes(rec["box"], n)[:1] if rec.get("box") is not None else None
    return str(key), {"caption": caption, "box": None if box is None or not len(box) else box[0]}


def _encode_caption(uid: str, value: dict) -> dict:
    out: dict = {"key": uid, "caption": value["caption"]}
    if value.get("box") is not None:
        out["box"] = [float(x) for x in value["box"]]
    return out


def _strip_sos_eos(ref: str) -> str:
    words = ref.split()
    if words[:1] == ["sos"]:
        words = words[1:]
    if words[-1:] == ["eos"]:
        words = words[:-1]
    return " ".join(words)


def _score_scan2cap(objects: list, preds: Mapping[str, dict], ctx: EvalContext) -> dict:
    pipeline = ctx.caption_pipeline or "scan2cap"
    caption_scores = metric("caption_scores")
    if pipeline == "corpus":
        # Scan2Cap's own rule: references are the corpus' `sos <first 30 tokens> eos`, candidates `sos ... eos`
        refs = {o.key: list(o.references) for o in objects}

        def cand(text: str) -> str:
            return f"sos {text} eos" if text else "sos eos"
        lib_pipeline = "raw"
    else:
        refs = {o.key: [_strip_sos_eos(r) for r in o.references] for o in objects}

        def cand(text: str) -> str:
            return text
        lib_pipeline = pipeline

    def run(gate: float | None) -> dict:
        cands = {}
        for o in objects:
            p = preds.get(o.key)
            text = p["caption"] if p is not None else ""
            if gate is not None and p is not None:
                if p.get("box") is None:
                    text = ""
                else:
                    iou = float(metric("box3d_iou")(np.asarray(p["box"]), ctx.gt_box(o.scene_id, o.object_id)))
                    text = text if iou >= gate else ""
            cands[o.key] = cand(text)
        res = caption_scores(cands, refs, pipeline=lib_pipeline, meteor_backend=ctx.meteor_backend)
        res.pop("per_item", None)
        return res

    out = run(None)
    out["meteor_backend"] = ctx.meteor_backend
    with_box = sum(1 for p in preds.values() if p.get("box") is not None)
    if with_box and ctx.has_gt_boxes():
        for k in (0.25, 0.5):
            out[f"m@{k:g}"] = run(k)
    elif with_box:
        ctx.note("predictions carry boxes but no GT boxes were given (--gt-boxes / --scenes): m@kIoU not computed")
    else:
        ctx.note("oracle: no predicted boxes, so captions are scored given the GT object (no m@kIoU gating; not the "
                 "benchmark's detection setting)")
    out["oracle"] = not with_box   # labelled in metrics.json and the printed table
    out["n"] = len(objects)
    out["pipeline"] = pipeline
    return out


def _caption_majority(objects: list, ctx: EvalContext) -> dict[str, dict]:
    if ctx.train_annotations:
        source = load_scan2cap(_one(ctx.train_annotations, "scan2cap --train-annotations"), Problems())
    else:
        ctx.note("majority baseline: no --train-annotations, so the most frequent reference comes from the evaluated "
                 "file itself (not held out)")
        source = ctx.all_records or objects
    refs = [_strip_sos_eos(r) for o in source for r in o.references]
    best = _majority(refs)
    return {o.key: {"caption": best, "box": None} for o in objects}


def _load_scan2cap(paths: Sequence[Path], problems: Problems) -> list:
    return load_scan2cap(_one(paths, "scan2cap"), problems)


# --- ScanRefer ------------------------------------------------------------------------------------------------

def _parse_grounding(id_fields: tuple[str, ...]) -> Parser:
    def parse(rec: dict, n: int) -> tuple[str, np.ndarray]:
        if "id" in rec:
            uid = str(rec["id"])
        elif all(f in rec for f in id_fields):
            uid = "|".join(str(rec[f]) for f in id_fields)
        else:
            raise DataError(f"predictions line {n}: missing 'id' (or {', '.join(id_fields)})")
        value = _field(rec, n, "boxes", "box")
        return uid, _boxes(value, n)
    return parse


def _encode_boxes(uid: str, boxes: np.ndarray) -> dict:
    return {"id": uid, "boxes": _box_list(boxes)}


def _unique_mask(records: list, ctx: EvalContext) -> np.ndarray:
    """ScanRefer "unique": the target is the only annotated object of its class in its scene (M3DRef-CLIP
    `add_evaluation_labels.py`; classes are NYU40 ids with a --label-map, else the raw object names)."""
    nyu = ctx.nyu40_of()
    valid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39}

    def cls(name: str) -> Any:
        if nyu is None:
            return name
        c = nyu.get(name.replace("_", " "), 39)
        return c if c in valid else 39

    if nyu is None:
        ctx.note("unique/multiple split from raw object names (give --label-map scannetv2-labels.combined.tsv for "
                 "the official NYU40 rule)")
    objects: dict[tuple[str, Any], set[int]] = {}
    for r in ctx.all_records or records:
        objects.setdefault((r.scene_id, cls(r.object_name)), set()).add(r.object_id)
    return np.array([len(objects[(r.scene_id, cls(r.object_name))]) == 1 for r in records])


def _score_scanrefer(records: list, preds: Mapping[str, np.ndarray], ctx: EvalContext) -> dict:
    tick = ctx.ticker("GT boxes", len(records))
    gt = []
    for r in records:
        gt.append(ctx.gt_box(r.scene_id, r.object_id))
        tick()
    gt_arr = np.asarray(gt).reshape(-1, 6)
    pred = []
    empty = 0
    for r, g in zip(records, gt_arr):
        boxes = preds.get(r.uid)
        if boxes is None or not len(boxes):
            empty += boxes is not None
            pred.append(np.concatenate([g[:3], np.zeros(3)]))   # zero-volume box: IoU 0, i.e. scored as wrong
        else:
            pred.append(boxes[0])                               # top-1 box
    if empty:
        ctx.note(f"{empty} prediction(s) with no box scored as wrong")
    out = metric("scanrefer_accuracy")(np.asarray(pred), gt_arr, _unique_mask(records, ctx))
    out.pop("iou", None)
    return out


def _random_proposal(records: list, ctx: EvalContext) -> dict[str, np.ndarray]:
    rng = random.Random(ctx.seed)
    out = {}
    for r in records:
        props = ctx.proposals(r.scene_id)
        out[r.uid] = props[rng.randrange(len(props))][None] if len(props) else np.zeros((0, 6))
    return out


def _oracle_scanrefer(records: list, ctx: EvalContext) -> dict[str, np.ndarray]:
    return {r.uid: ctx.gt_box(r.scene_id, r.object_id)[None] for r in records}


def _load_scanrefer(paths: Sequence[Path], problems: Problems) -> list:
    return load_scanrefer(_one(paths, "scanrefer"), problems)


# --- Multi3DRefer ---------------------------------------------------------------------------------------------

def _score_multi3drefer(records: list, preds: Mapping[str, np.ndarray], ctx: EvalContext) -> dict:
    gt, pred = [], []
    tick = ctx.ticker("GT boxes", len(records))
    for r in records:
        g = np.asarray([ctx.gt_box(r.scene_id, o) for o in r.object_ids]).reshape(-1, 6)
        gt.append(g)
        p = preds.get(r.uid)
        if p is None:   # missing -> wrong: one dummy box for zero-target queries (F1 0), none otherwise (F1 0)
            p = np.zeros((1, 6)) if r.eval_type.startswith("zt") else np.zeros((0, 6))
        pred.append(p)
        tick()
    out = metric("multi3drefer_f1")(pred, gt, [r.eval_type for r in records])
    out.pop("per_query", None)
    return out


def _oracle_multi3drefer(records: list, ctx: EvalContext) -> dict[str, np.ndarray]:
    return {r.uid: np.asarray([ctx.gt_box(r.scene_id, o) for o in r.object_ids]).reshape(-1, 6) for r in records}


def _load_multi3drefer(paths: Sequence[Path], problems: Problems) -> list:
    return load_multi3drefer(_one(paths, "multi3drefer"), problems)


# --- Nr3D / Sr3D -------------------------------------------------------------------------------------------------

def _parse_referit(rec: dict, n: int) -> tuple[str, dict]:
    uid = str(_field(rec, n, "id"))
    if "correct" in rec:
        if not isinstance(rec["correct"], bool):
            raise DataError(f"predictions line {n}: correct must be true or false")
        return uid, {"correct": rec["correct"]}
    oid = _field(rec, n, "correct", "object_id")
    if not isinstance(oid, int) or isinstance(oid, bool):
        raise DataError(f"predictions line {n}: object_id must be an integer")
    return uid, {"object_id": oid}


def _encode_referit(uid: str, value: dict) -> dict:
    return {"id": uid, **value}


def _score_referit(records: list, preds: Mapping[str, dict], ctx: EvalContext) -> dict:
    correct = []
    for r in records:
        p = preds.get(r.uid)
        if p is None:
            correct.append(False)
        elif "correct" in p:
            correct.append(bool(p["correct"]))
        else:
            correct.append(p["object_id"] == r.target_id)
    return metric("referit3d_accuracy")(correct, [r.hard for r in records], [r.view_dependent for r in records])


def _random_referit(records: list, ctx: EvalContext) -> dict[str, dict]:
    """Pick uniformly among the objects of the target's class (target + distractors of the stimulus)."""
    rng = random.Random(ctx.seed)
    return {r.uid: {"object_id": rng.choice((r.target_id, *r.distractor_ids))} for r in records}


def _oracle_referit(records: list, ctx: EvalContext) -> dict[str, dict]:
    return {r.uid: {"object_id": r.target_id} for r in records}


def _load_referit(paths: Sequence[Path], problems: Problems) -> list:
    return load_referit3d(_one(paths, "nr3d/sr3d"), problems)


# --- geometry (depth, pose, recon): records are scenes -----------------------------------------------------------

@dataclass(frozen=True)
class SceneItem:
    scene_id: str

    @property
    def uid(self) -> str:
        return self.scene_id


def _load_scenes(paths: Sequence[Path], problems: Problems) -> list:
    return [SceneItem(s) for s in read_scene_list(_one(paths, "depth/pose/recon"), problems)]


def _encode_scene(uid: str, path: Any) -> dict:
    return {"scene_id": uid, "path": str(path)}


def _predict_geometry(kind: str) -> ModelHook:
    def predict(model_dir: Path, item: Any, ctx: EvalContext) -> Mapping[str, Any]:
        from vidllm_core.evaluation.model_geometry import predict_scene

        return predict_scene(kind, model_dir, item, ctx)
    return predict


def _geometry_variants() -> dict[str, str]:
    from vidllm_core.evaluation.model_geometry import MODEL_VARIANTS

    return dict(MODEL_VARIANTS)


def _score_geometry(kind: str) -> Scorer:
    def score(items: list, preds: Mapping[str, Any], ctx: EvalContext) -> dict:
        from vidllm_core.evaluation import geometry

        return geometry.score(kind, items, preds, ctx)
    return score


# --- language tasks: the model hook encodes each scene once and answers in the scene frame -------------------------

def _language_hooks(task: str) -> dict[str, Any]:
    def predict(model_dir: Path, item: Any, ctx: EvalContext) -> Mapping[str, Any]:
        from vidllm_core.evaluation.language_hooks import predict_record

        return predict_record(task, model_dir, item, ctx)

    def prepare(model_dir: Path, out_dir: Path, items: list, ctx: EvalContext) -> list:
        """Checks before anything is written, the resume guard, and the items grouped by scene (run order)."""
        from vidllm_core.evaluation.language_hooks import prepare_run

        return prepare_run(task, model_dir, out_dir, items, ctx)

    return {"predict": predict, "prepare": prepare}


def _train(builder: str) -> Callable[[Any, Any, int], list]:
    """The training-sample builder `builder` of `training/language_samples.py` (imported on first use: torch)."""
    def build(record: Any, boxes: Any, limit: int) -> list:
        from vidllm_core.training import language_samples

        return getattr(language_samples, builder)(record, boxes, limit)
    return build


# --- registry -------------------------------------------------------------------------------------------------

def _qa_encode(uid: str, answer: str) -> dict:
    return {"question_id": uid, "answer": answer}


TASKS: dict[str, Task] = {
    "scanqa": Task("scanqa", "qa", "questions", "question_id", _load_scanqa, _parse_qa, _qa_encode,
                   lambda r, p, c: _score_qa(r, p, c, typed=False),
                   {"majority": lambda r, c: _qa_majority(r, c, _load_scanqa)},
                   **_language_hooks("scanqa"), train=_train("qa_samples"),
                   predictions_help='{"question_id": "val-scene0011-0", "answer": "brown"}'),
    "sqa3d": Task("sqa3d", "qa", "questions", "question_id", _load_sqa3d, _parse_qa, _qa_encode,
                  lambda r, p, c: _score_qa(r, p, c, typed=True),
                  {"majority": lambda r, c: _qa_majority(r, c, _load_sqa3d)},
                  **_language_hooks("sqa3d"), train=_train("qa_samples"),
                  predictions_help='{"question_id": 220602000002, "answer": "piano"}'),
    "scan2cap": Task("scan2cap", "caption", "objects", "key", _load_scan2cap, _parse_caption, _encode_caption,
                     _score_scan2cap, {"majority": _caption_majority}, **_language_hooks("scan2cap"),
                     model_variants={"oracle-box": "the GT box is captioned instead of the matched proposal: an "
                                                   "oracle setting, labelled so in metrics.json"}, train=_train("scan2cap_samples"),
                     predictions_help='{"key": "scene0707_00|3|trash_can", "caption": "...", "box": [cx,cy,cz,dx,dy,dz]}'),
    "scanrefer": Task("scanrefer", "grounding", "descriptions", "id", _load_scanrefer,
                      _parse_grounding(("scene_id", "object_id", "ann_id")), _encode_boxes, _score_scanrefer,
                      {"random": _random_proposal, "oracle-box": _oracle_scanrefer},
                      **_language_hooks("scanrefer"), train=_train("scanrefer_samples"),
                      predictions_help='{"id": "scene0707_00|3|3", "boxes": [[cx,cy,cz,dx,dy,dz]]}'),
    "multi3drefer": Task("multi3drefer", "multi", "descriptions", "id", _load_multi3drefer,
                         _parse_grounding(("scene_id", "ann_id")), _encode_boxes, _score_multi3drefer,
                         {"random": _random_proposal, "oracle-box": _oracle_multi3drefer},
                         **_language_hooks("multi3drefer"), train=_train("multi3drefer_samples"),
                         predictions_help='{"id": "scene0011_00|5", "boxes": [[cx,cy,cz,dx,dy,dz], ...]}'),
    "nr3d": Task("nr3d", "referit", "utterances", "id", _load_referit, _parse_referit, _encode_referit,
                 _score_referit, {"random": _random_referit, "oracle-box": _oracle_referit},
                 **_language_hooks("nr3d"), train=_train("referit_samples"),
                 predictions_help='{"id": "17", "object_id": 25} or {"id": "17", "correct": true}'),
    "sr3d": Task("sr3d", "referit", "utterances", "id", _load_referit, _parse_referit, _encode_referit,
                 _score_referit, {"random": _random_referit, "oracle-box": _oracle_referit},
                 **_language_hooks("sr3d"), train=_train("referit_samples"),
                 predictions_help='{"id": "17", "object_id": 25} or {"id": "17", "correct": true}'),
    # Geometry tasks: the model hook reconstructs each scene and writes the files geometry.py scores
    # (evaluation/model_geometry.py), returning {"path": ...} for predictions.jsonl.
    "depth": Task("depth", "geometry", "scenes", "scene_id", _load_scenes, None, _encode_scene,
                  _score_geometry("depth"), predict=_predict_geometry("depth"),
                  predictions_help="DIR/<scene>/depth/<frame>.png (uint16 mm) or .npy (m)",
                  model_variants=_geometry_variants()),
    "pose": Task("pose", "geometry", "scenes", "scene_id", _load_scenes, None, _encode_scene,
                 _score_geometry("pose"), predict=_predict_geometry("pose"),
                 predictions_help='DIR/<scene>/cameras.json {"<frame>": 4x4 cam-to-world}',
                 model_variants=_geometry_variants()),
    "recon": Task("recon", "geometry", "scenes", "scene_id", _load_scenes, None, _encode_scene,
                  _score_geometry("recon"), predict=_predict_geometry("recon"),
                  predictions_help="DIR/<scene>.ply (points or mesh vertices, metres)",
                  model_variants=_geometry_variants()),
}


if tuple(TASKS) != tuple(TASK_SPECS):  # the task names are declared once, in vidllm_core/tasks.py
    raise RuntimeError(f"evaluation TASKS {tuple(TASKS)} differ from vidllm_core.tasks {tuple(TASK_SPECS)}")


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def task_names() -> list[str]:
    return list(TASKS)


__all__ = ["EVAL_TYPES", "SceneItem", "TASKS", "Task", "get_task", "task_names"]
