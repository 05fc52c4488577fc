"""Stage-2 language samples from the paper's training sets (Vid-LLM Sec. 4.1: ScanQA, SQA3D, Scan2Cap, ScanRefer,
Multi3DRefer, Nr3D / Sr3D), joined to scenes by scene id; one builder per task, named by the task's registry entry
(`evaluation/tasks.py`, field `train`), which also gives the loader that reads the annotation file as released."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError
from vidllm_core.tasks import BOX_TASKS

#: (scene id, object id) -> GT box [cx, cy, cz, dx, dy, dz] in the scene's axis-aligned frame, or None.
BoxLookup = Callable[[str, int], "np.ndarray | None"]


@dataclass(frozen=True)
class LanguageSample:
    """One training item of a scene.

    task: registry name (logged per task). prompt: the `TaskPrompt` with its target; for Scan2Cap it is built per
    clip by `prompt_in`, because the prompt names the object's box in the clip's box frame (`prompt_box`).
    box_world: grounding targets [G, 6] in the scene's axis-aligned frame (G may be 0: Multi3DRefer zero-target);
    None = no grounding loss.
    """

    task: str
    prompt: Any
    box_world: tuple[tuple[float, ...], ...] | None = None
    prompt_box: tuple[float, ...] | None = None

    def prompt_in(self, frame: Any, box: Any = None) -> Any:
        """The prompt of this clip: Scan2Cap names the box in `frame` (a `geometry.box_frame.BoxFrame`): the GT box
        `prompt_box`, or `box` (scene frame; the proposal matched to it when `data.proposals` is set)."""
        if self.prompt_box is None:
            return self.prompt
        from vidllm_core.language.prompts import scan2cap_prompt

        named = self.prompt_box if box is None else box
        in_frame = frame.boxes_from_scene(np.asarray(named, dtype=np.float64).reshape(1, 6))[0]
        return scan2cap_prompt(box=[float(v) for v in in_frame], caption=self.prompt.target)


def _box(b: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(b).reshape(6))


# ---- one builder per task (record -> samples; a missing box raises DataError naming the object) ------------------
def qa_samples(record: Any, boxes: BoxLookup, limit: int) -> list[LanguageSample]:
    """ScanQA / SQA3D: the first answer is the target (LLaVA-3D / Video-3D-LLM); SQA3D adds the situation."""
    from vidllm_core.language.prompts import scanqa_prompt, sqa3d_prompt

    if not record.answers:
        return []
    situation = getattr(record, "situation", None)
    if situation is not None:
        return [LanguageSample("sqa3d", sqa3d_prompt(situation, record.question, record.answers[0],
                                                     max_question_tokens=limit))]
    return [LanguageSample("scanqa", scanqa_prompt(record.question, record.answers[0], max_question_tokens=limit))]


def scan2cap_samples(record: Any, boxes: BoxLookup, limit: int) -> list[LanguageSample]:
    """Scan2Cap: one sample per reference description of the object; the prompt names the object's GT box."""
    from vidllm_core.language.prompts import TaskPrompt

    box = _lookup(boxes, record.scene_id, record.object_id)
    refs = [" ".join(w for w in r.split() if w not in ("sos", "eos")) for r in record.references]
    return [LanguageSample("scan2cap", TaskPrompt("scan2cap", "", r), None, _box(box)) for r in refs if r.strip()]


def scanrefer_samples(record: Any, boxes: BoxLookup, limit: int) -> list[LanguageSample]:
    """ScanRefer: ground the description to its one object."""
    from vidllm_core.language.prompts import grounding_prompt

    box = _lookup(boxes, record.scene_id, record.object_id)
    return [LanguageSample("scanrefer", grounding_prompt(record.description, max_question_tokens=limit),
                           (_box(box),))]


def multi3drefer_samples(record: Any, boxes: BoxLookup, limit: int) -> list[LanguageSample]:
    """Multi3DRefer: ground the description to all of its objects (zero, one or many)."""
    from vidllm_core.language.prompts import grounding_prompt

    targets = tuple(_box(_lookup(boxes, record.scene_id, o)) for o in record.object_ids)
    return [LanguageSample("multi3drefer", grounding_prompt(record.description, multiple=True,
                                                            max_question_tokens=limit), targets)]


def referit_samples(record: Any, boxes: BoxLookup, limit: int) -> list[LanguageSample]:
    """Nr3D / Sr3D: ground the utterance to its target; `vidllm eval` then chooses among the scene's objects of
    that class the one whose GT box overlaps the grounded box most (docs/DESIGN.md, "Training sets")."""
    from vidllm_core.language.prompts import TaskPrompt, grounding_prompt

    p = grounding_prompt(record.utterance, max_question_tokens=limit)
    box = _lookup(boxes, record.scene_id, record.target_id)
    return [LanguageSample(record.dataset, TaskPrompt(record.dataset, p.prompt, p.target, p.truncated), (_box(box),))]


def _lookup(boxes: BoxLookup, scene_id: str, object_id: int) -> np.ndarray:
    box = boxes(scene_id, int(object_id))
    if box is None:
        raise DataError(f"object {object_id} of {scene_id} is not in the scan's GT boxes")
    return box


# ---- the loader --------------------------------------------------------------------------------------------------
def load_language_samples(annotations: Mapping[str, str], scene_ids: Sequence[str],
                          gt_boxes: Mapping[str, Mapping[int, np.ndarray]] | None = None,
                          max_question_tokens: int = 256) -> tuple[dict[str, list[LanguageSample]], list[str]]:
    """Every task of `annotations` ({task: file}), read by its registry loader and joined to `scene_ids`.

    Returns (samples by scene id, notes). Records of scenes outside `scene_ids` and records naming an object that
    is not in the scene's GT boxes are skipped and counted in one note per task (also a warning); a task whose
    file yields no sample for these scenes is refused (DataError), as is a box task without `gt_boxes`."""
    from vidllm_core.data.benchmarks import Problems
    from vidllm_core.evaluation.tasks import get_task

    wanted = set(scene_ids)
    out: dict[str, list[LanguageSample]] = {s: [] for s in scene_ids}
    notes: list[str] = []

    def lookup(scene_id: str, object_id: int) -> np.ndarray | None:
        return (gt_boxes or {}).get(scene_id, {}).get(object_id)

    for name, path in annotations.items():
        if name == "gt_boxes":
            continue
        task = get_task(name)
        if task.train is None:
            raise DataError(f"data.annotations.{name}: {name} is not a training task")
        if task.name in BOX_TASKS and gt_boxes is None:
            raise DataError(f"data.annotations.{name} needs GT boxes: set data.annotations.gt_boxes or point "
                            "data.scenes at a prepared folder (vidllm prepare scannet)")
        records = task.load([Path(path)], Problems())
        other_scene, missing_box, n = [], [], 0
        for rec in records:
            if rec.scene_id not in wanted:
                other_scene.append(rec.scene_id)
                continue
            try:
                samples = task.train(rec, lookup, max_question_tokens)
            except DataError as exc:
                missing_box.append(str(exc))
                continue
            out[rec.scene_id].extend(samples)
            n += len(samples)
        if missing_box:
            notes.append(f"{name}: {len(missing_box)} record(s) skipped, e.g. {missing_box[0]}")
        if other_scene:
            notes.append(f"{name}: {len(other_scene)} record(s) of {len(set(other_scene))} scene(s) not in "
                         f"data.scenes skipped, e.g. {sorted(set(other_scene))[0]}")
        if n == 0:
            why = f" ({missing_box[0]})" if missing_box else ""
            raise DataError(f"data.annotations.{name} ({path}) gives no training sample for the {len(wanted)} "
                            f"scene(s) of data.scenes{why}")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return out, notes


def choose_samples(samples: Sequence[LanguageSample], k: int, weights: Mapping[str, float],
                   rng: np.random.Generator) -> list[LanguageSample]:
    """Up to `k` distinct samples of a scene, each drawn with probability proportional to its task's weight
    (`data.task_weights`, default 1; weight 0 leaves a task out), kept in their original order."""
    w = np.array([float(weights.get(s.task, 1.0)) for s in samples], dtype=np.float64)
    live = int((w > 0).sum())
    if live == 0 or k < 1:
        return []
    pick = rng.choice(len(samples), size=min(k, live), replace=False, p=w / w.sum())
    return [samples[j] for j in sorted(pick)]

__all__ = ["BoxLookup", "LanguageSample", "choose_samples", "load_language_samples", "multi3drefer_samples",
           "qa_samples", "referit_samples", "scan2cap_samples", "scanrefer_samples"]
