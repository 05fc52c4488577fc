"""Model-driven `vidllm eval` for the language benchmarks (paper Sec. 4, Tab. 2-4: ScanQA, SQA3D, Scan2Cap,
ScanRefer, Multi3DRefer, Nr3D, Sr3D): one vision pass per ScanNet posed-images scene, answers placed in the ScanNet
frame through the GT pose of the first sampled frame, as video 3D-LLMs do (issue 5 item 3 and 5).

Per scene: the model's `input.num_frames` colour frames are sampled uniformly (the rule and helpers of
`model_geometry`, so the depth/pose/recon hooks and these see the same frames), encoded once
(`VidLLM.encode_scene`: reconstruction + voxel-pooled 3D tokens) and kept in memory while that scene's records are
answered. `scene_order` groups the records by scene so every scene is encoded exactly once per run.

Frames. The model's world is its first camera, in metres. `to_scene = A @ c2w_gt[a] @ w2c_pred[a]` maps it into the
scene frame of the GT boxes and proposals (A: the axis alignment of `--prepared`, else `<scene>.txt`; none is an
error unless --allow-missing-alignment, which metrics.json notes; a: the first
sampled frame with a finite GT pose). Grounding boxes and the Scan2Cap prompt box live in the box frame derived from
it (`geometry.box_frame.box_frame_from_scene`: the scene frame up to a quarter turn about z and a shift), so boxes
cross between it and the scene frame exactly, never as the inflated bounds of rotated corners. The scale stays the
model's own.

Per task (returned fields = the `--predictions` record of the task, the id is added by the writer):
    scanqa         {"answer"}                      `pipelines.language.ask`
    sqa3d          {"answer"}                      `ask` with the record's situation text
    scan2cap       {"caption", "box"}              `--proposals`: the proposal of highest IoU with the GT box is
                                                   captioned (box frame in the prompt) and returned as "box"
                                                   (m@kIoU); `--baseline oracle-box`: the GT box, no "box" (oracle)
    scanrefer      {"boxes": [box]}                `ground`; with `--proposals` the head picks one proposal
    multi3drefer   {"boxes": [...]}                `ground(multiple=True)`: 0..K boxes above the threshold
    nr3d / sr3d    {"object_id", "iou"}            `ground`, then the candidate (target + distractors of the
                                                   record) whose GT box has the highest IoU with the predicted box;
                                                   ties (e.g. all IoU 0) go to the nearest box centre, then the
                                                   smallest object id (never to the candidates' file order)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError
from vidllm_core.evaluation.context import EvalContext, metric
from vidllm_core.tasks import BOX_TASKS, LANGUAGE_TASKS  # declared once

PROPOSAL_TASKS = ("scan2cap", "scanrefer", "multi3drefer")
QA_MAX_NEW_TOKENS = 32        # `vidllm ask` default: answers are a word or a phrase
CAPTION_MAX_NEW_TOKENS = 48   # `vidllm caption` default: Scan2Cap references average ~20 words
MIN_BOX_SIZE = 0.01           # metres; a degenerate (flat) GT box is widened to this so the prompt stays valid
SCENES_IN_MEMORY = 2          # encodings kept (LRU); `scene_order` makes one enough
SCAN2CAP_ORACLE = "oracle-box"  # the model variant that captions GT boxes (evaluation.tasks, model_geometry)


@dataclass
class EncodedScene:
    """One scene's vision pass and its frame map.

    encoding: the `SceneEncoding` (on ctx.device). frames: names of the sampled frames. to_scene: 4x4 float64,
    reconstruction world -> scene frame (None when no sampled frame has a finite GT pose). anchor: the frame whose
    GT pose placed the reconstruction (None likewise).
    """

    scene_id: str
    encoding: Any
    frames: list[str]
    to_scene: np.ndarray | None
    anchor: str | None

    def require_frame(self) -> np.ndarray:
        if self.to_scene is None:
            raise DataError(f"scene {self.scene_id}: none of the {len(self.frames)} sampled frames has a valid GT "
                            "pose, so boxes cannot be placed in the scene's frame")
        return self.to_scene

    def box_frame(self) -> Any:
        """The grounding box frame (`geometry.box_frame.BoxFrame`) placed by `to_scene`."""
        from vidllm_core.geometry.box_frame import box_frame_from_scene

        return box_frame_from_scene(self.require_frame())


# --- run set-up --------------------------------------------------------------------------------------------------

def scene_order(items: Sequence[Any]) -> list[Any]:
    """`items` grouped by scene (scenes in order of first appearance, records in file order inside a scene), so a
    scene is encoded once even when the file interleaves scenes (ScanRefer test: 97 scenes in 4,514 runs)."""
    groups: dict[str, list[Any]] = {}
    for it in items:
        groups.setdefault(it.scene_id, []).append(it)
    return [it for group in groups.values() for it in group]


def run_signature(task: str, model_dir: Path, ctx: EvalContext) -> dict:
    """What must not change when a run resumes: model, variant, frames, proposals (grounding / captioning)."""
    from vidllm_core.evaluation.model_geometry import _run_signature, load_model
    from vidllm_core.pipelines.reconstruct import preprocess_settings

    num_frames = ctx.num_frames or preprocess_settings(load_model(model_dir, ctx)).num_frames
    sig = _run_signature(model_dir, ctx, num_frames)
    if task in PROPOSAL_TASKS:
        sig["proposals"] = str(Path(ctx.proposals_dir).resolve()) if ctx.proposals_dir is not None else None
    return sig


def prepare_run(task: str, model_dir: Path, out_dir: Path, items: Sequence[Any], ctx: EvalContext) -> list[Any]:
    """Checks that fail before anything is written (scenes folder, model, language branch, GT boxes for nr3d/sr3d),
    the resume guard `OUT/predictions/run.json` (as for depth/pose/recon), and the scene-grouped item order."""
    from vidllm_core.evaluation.model_geometry import PREDICTIONS_SUBDIR, _guard_resume, check_scenes_dir, load_model
    from vidllm_core.pipelines.language import require_language

    if task not in LANGUAGE_TASKS:
        raise ValueError(f"{task} is not a language task")
    check_scenes_dir(ctx, task)
    if task in ("nr3d", "sr3d") and ctx.gt_boxes_path is None and ctx.prepared_dir is None:
        raise DataError(f"{task} --model picks among the GT objects of the scene: give their boxes with --prepared "
                        "DIR (vidllm prepare scannet) or --gt-boxes FILE ({scene: {object_id: [cx,cy,cz,dx,dy,dz]}}, "
                        "scene frame)")
    if task == "scan2cap" and ctx.proposals_dir is None and ctx.model_variant != SCAN2CAP_ORACLE:
        raise DataError("scan2cap --model captions detected objects (the benchmark's m@0.25 / m@0.5 protocol): give "
                        f"--proposals DIR, or --baseline {SCAN2CAP_ORACLE} to caption the GT boxes (an oracle "
                        "setting, labelled as such)")
    if task == "scan2cap" and ctx.proposals_dir is not None and ctx.model_variant == SCAN2CAP_ORACLE:
        raise DataError(f"--baseline {SCAN2CAP_ORACLE} captions the GT boxes: leave out --proposals")
    require_language(load_model(model_dir, ctx))
    ctx.predictions_dir = Path(out_dir) / PREDICTIONS_SUBDIR
    ctx.predictions_dir.mkdir(parents=True, exist_ok=True)
    _guard_resume(ctx.predictions_dir, run_signature(task, model_dir, ctx))
    ordered = scene_order(items)
    ctx.cached("language-run-order", list)[:] = ordered   # `qa_batch` looks ahead in it
    ctx.cached("language-run-index", dict).update({it.uid: k for k, it in enumerate(ordered)})
    return ordered


# --- one scene ---------------------------------------------------------------------------------------------------

def encode_posed_scene(model: Any, scenes_dir: Path, scene_id: str, ctx: EvalContext) -> EncodedScene:
    """One posed-images scene through the vision pass (`run_vision_pass`, with tokens), placed in the scene frame."""
    from vidllm_core.data.frames import ScanNetSceneSource
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    source = ScanNetSceneSource(scenes_dir / scene_id, ctx.open_scene(scenes_dir, scene_id))  # + axis alignment
    scene = run_vision_pass(model, source, num_frames=ctx.num_frames, tokens=True, device=ctx.device)
    place = scene.placement
    return EncodedScene(scene_id, scene.encoding, scene.frame_ids, None if place is None else place.to_scene,
                        None if place is None else place.anchor_id)


def scene_for(model_dir: Path, scene_id: str, ctx: EvalContext) -> EncodedScene:
    """The encoded scene, from memory when it is one of the last `SCENES_IN_MEMORY` scenes, else encoded now."""
    from vidllm_core.evaluation.model_geometry import check_scenes_dir, load_model

    cache: OrderedDict[str, EncodedScene] = ctx.cached("language-scenes", OrderedDict)
    if scene_id in cache:
        cache.move_to_end(scene_id)
        return cache[scene_id]
    model = load_model(model_dir, ctx)
    state = encode_posed_scene(model, check_scenes_dir(ctx, "language"), scene_id, ctx)
    cache[scene_id] = state
    while len(cache) > SCENES_IN_MEMORY:
        cache.popitem(last=False)
    return state


# --- boxes -------------------------------------------------------------------------------------------------------

def to_scene_frame(boxes: np.ndarray, state: EncodedScene) -> np.ndarray:
    """Boxes [K, 6] from the scene's box frame into the scene frame (exact: a quarter turn and a shift)."""
    return state.box_frame().boxes_to_scene(boxes)


def to_box_frame(boxes: np.ndarray, state: EncodedScene) -> np.ndarray:
    """Boxes [K, 6] from the scene frame into the scene's box frame (exact), where the model grounds."""
    return state.box_frame().boxes_from_scene(boxes)


def _box_list(boxes: np.ndarray) -> list[list[float]]:
    return [[float(x) for x in b] for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 6)]


def _ground(model: Any, state: EncodedScene, text: str, multiple: bool,
            proposals: np.ndarray | None) -> np.ndarray:
    """Grounded boxes in the scene frame. With `proposals` (scene frame) they are mapped into the reconstruction
    for the head to score, and the chosen ones are returned exactly as given."""
    from vidllm_core.pipelines.language import ground

    frame = state.box_frame()
    if proposals is None:
        res = ground(model, state.encoding, text, multiple=multiple, frame=frame)
        return to_scene_frame(res.boxes, state)
    if not len(proposals):
        return np.zeros((0, 6))
    props = np.asarray(proposals, dtype=np.float64).reshape(-1, 6)
    mapped = frame.boxes_from_scene(np.concatenate([props[:, :3], np.maximum(props[:, 3:], MIN_BOX_SIZE)],
                                                   1)).astype(np.float32)
    res = ground(model, state.encoding, text, multiple=multiple, proposals=mapped, frame=frame)
    if not len(res.boxes):
        return np.zeros((0, 6))
    index = np.abs(mapped[None] - res.boxes[:, None].astype(np.float32)).sum(-1).argmin(1)
    return props[index]


# --- the hook ----------------------------------------------------------------------------------------------------

def predict_record(task: str, model_dir: Path, record: Any, ctx: EvalContext) -> Mapping[str, Any]:
    """The `predict` model hook of the language tasks: one record -> its prediction fields."""
    from vidllm_core.evaluation.model_geometry import load_model
    from vidllm_core.pipelines import language as L

    if task not in LANGUAGE_TASKS:
        raise ValueError(f"{task} is not a language task")
    model = load_model(model_dir, ctx)
    L.require_language(model)
    state = scene_for(model_dir, record.scene_id, ctx)
    enc = state.encoding
    ctx.note(f"model run: each scene is encoded once from {ctx.num_frames or model.config.input.num_frames} frames "
             "sampled uniformly from its colour frames"
             + ("; boxes live in a gravity-aligned box frame placed by the GT pose of the first sampled frame "
                "(rigid, the model's own scale; an exact quarter-turn map to the scene frame)"
                if task in BOX_TASKS else ""))

    if task in ("scanqa", "sqa3d"):
        answers: dict[str, str] = ctx.cached("qa-answers", dict)
        if record.uid not in answers:
            answers.update(answer_questions(task, model, enc, qa_batch(record, ctx), ctx))
        return {"answer": answers.pop(record.uid)}

    if task in PROPOSAL_TASKS:
        ctx.note(grounding_mode(task, ctx.proposals_dir is not None))

    if task == "scan2cap":
        gt = np.asarray(ctx.gt_box(record.scene_id, record.object_id), dtype=np.float64)
        out: dict[str, Any] = {}
        target = gt
        if ctx.proposals_dir is not None:
            props = ctx.proposals(record.scene_id)
            if not len(props):
                return {"caption": ""}
            iou = metric("box3d_iou_matrix")(gt[None], props)[0]
            target = props[int(np.argmax(iou))]
            out["box"] = [float(x) for x in target]
        box = to_box_frame(np.concatenate([target[:3], np.maximum(target[3:], MIN_BOX_SIZE)]), state)[0]
        prompt = _scan2cap_prompt(box)
        out["caption"] = L.answer_prompts(model, enc, [prompt], max_new_tokens=CAPTION_MAX_NEW_TOKENS, seed=ctx.seed)[0]
        return out

    if task in ("scanrefer", "multi3drefer"):
        proposals = ctx.proposals(record.scene_id) if ctx.proposals_dir is not None else None
        boxes = _ground(model, state, record.description, task == "multi3drefer", proposals)
        return {"boxes": _box_list(boxes)}

    # nr3d / sr3d: ground the utterance, then pick among the GT objects of the record
    pred = _ground(model, state, record.utterance, False, None)
    candidates = sorted({record.target_id, *record.distractor_ids})
    gt = np.asarray([ctx.gt_box(record.scene_id, o) for o in candidates], dtype=np.float64).reshape(-1, 6)
    oid, iou = pick_object(pred[0] if len(pred) else None, candidates, gt)
    return {"object_id": oid, "iou": iou}


def qa_batch(record: Any, ctx: EvalContext) -> list[Any]:
    """`record` and the records after it in the run order (`prepare_run`) of the same scene, up to
    `ctx.answer_batch_size` (default `pipelines.language.ANSWER_BATCH_SIZE`): the questions answered together. The
    records a resumed run already wrote come before the first one it asks (the file is written in run order), so
    they are not asked again."""
    from vidllm_core.pipelines.language import ANSWER_BATCH_SIZE

    order: list[Any] = ctx.cached("language-run-order", list)
    start = ctx.cached("language-run-index", dict).get(record.uid)
    if start is None:   # a record outside the prepared run: answered alone
        return [record]
    batch = []
    for it in order[start:start + (ctx.answer_batch_size or ANSWER_BATCH_SIZE)]:
        if it.scene_id != record.scene_id:
            break
        batch.append(it)
    return batch


def answer_questions(task: str, model: Any, enc: Any, records: Sequence[Any], ctx: EvalContext) -> dict[str, str]:
    """uid -> greedy answer for ScanQA / SQA3D records of one scene, generated together (`answer_prompts`: the same
    answers as one at a time). An empty question is not asked: it is answered "" (scored as wrong) and noted."""
    from vidllm_core.language import prompts as P
    from vidllm_core.pipelines import language as L

    tok, limit = model.language.tokenizer, model.language.max_question_tokens
    answers: dict[str, str] = {}
    prompts: dict[str, Any] = {}
    for r in records:
        try:
            prompts[r.uid] = (P.sqa3d_prompt(r.situation, r.question, tokenizer=tok, max_question_tokens=limit)
                              if task == "sqa3d" else P.scanqa_prompt(r.question, tokenizer=tok,
                                                                       max_question_tokens=limit))
        except DataError:   # an empty question (or situation): nothing to ask
            ctx.note("some questions are empty; answered with an empty string")
            answers[r.uid] = ""
    texts = L.answer_prompts(model, enc, list(prompts.values()), max_new_tokens=QA_MAX_NEW_TOKENS, seed=ctx.seed)
    return answers | dict(zip(prompts, texts))


def grounding_mode(task: str, proposals: bool) -> str:
    """The metrics.json note naming how boxes were produced: `mode: proposals` or `mode: regression` (grounding),
    `mode: proposals` or `mode: oracle` (Scan2Cap on the GT box)."""
    if proposals:
        return (f"mode: proposals ({task}: the answer is chosen among the --proposals boxes, scene frame; "
                "Scan2Cap captions the proposal of highest IoU with the GT box)" if task == "scan2cap" else
                f"mode: proposals ({task}: the grounding head scores the --proposals boxes and returns the chosen "
                "ones exactly)")
    if task == "scan2cap":
        return (f"mode: oracle (scan2cap --baseline {SCAN2CAP_ORACLE}: the GT box is captioned; give --proposals DIR "
                "for the benchmark setting)")
    return f"mode: regression ({task}: boxes regressed by the grounding head in the box frame, mapped exactly)"


def _scan2cap_prompt(box: np.ndarray) -> Any:
    from vidllm_core.language import prompts as P

    return P.scan2cap_prompt(box=[float(x) for x in box])


def pick_object(pred: np.ndarray | None, object_ids: Sequence[int], gt_boxes: np.ndarray) -> tuple[int, float]:
    """The object whose GT box has the highest IoU with `pred`; ties by nearest centre, then smallest id.

    Args:
        pred: the predicted box [6] in the scene frame (None: no box; the nearest-centre rule is skipped).
        object_ids: candidate object ids, one per row of `gt_boxes` [N, 6].

    Returns:
        (object id, its IoU with `pred`).
    """
    ids = list(object_ids)
    if not ids:
        raise DataError("no candidate objects to choose from")
    if pred is None:
        return int(min(ids)), 0.0
    iou = np.asarray(metric("box3d_iou_matrix")(np.asarray(pred, dtype=np.float64)[None], gt_boxes)[0],
                     dtype=np.float64)
    dist = np.linalg.norm(gt_boxes[:, :3] - np.asarray(pred[:3], dtype=np.float64), axis=1)
    best = min(range(len(ids)), key=lambda i: (-iou[i], dist[i], ids[i]))
    return int(ids[best]), float(iou[best])


__all__ = ["EncodedScene", "LANGUAGE_TASKS", "answer_questions", "encode_posed_scene", "grounding_mode", "pick_object",
           "predict_record", "prepare_run", "qa_batch", "scene_for", "scene_order", "to_box_frame", "to_scene_frame"]
