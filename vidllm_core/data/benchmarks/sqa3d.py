"""SQA3D loader: questions + annotations joined on question_id (Ma et al., ICLR 2023; FORMATS.md sec. 2)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidllm_core.data.benchmarks._common import (Problems, is_int, missing_fields, read_json, scene_id_problem,
                                                 str_list, where)
from vidllm_core.errors import DataError

QUESTION_TYPES = ("what", "is", "how", "can", "which", "others")


def sqa3d_question_type(question: str) -> str:
    """Question type by prefix of the left-stripped, case-folded question (the `get_sqa_question_type` rule
    shared by Video-3D-LLM, LEO and Chat-Scene: a prefix test, so "Island ..." counts as "is")."""
    q = question.lstrip().lower()
    for prefix in ("what", "is", "how", "can", "which"):
        if q.startswith(prefix):
            return prefix
    return "others"


@dataclass(frozen=True)
class SQA3DQuestion:
    """One SQA3D question joined with its annotation. `answers` is empty when no annotation file was given."""

    question_id: int
    scene_id: str
    situation: str
    alternative_situations: tuple[str, ...]
    question: str
    answers: tuple[str, ...]                       # exactly one in the released files
    question_type: str                             # one of QUESTION_TYPES (derived from the question text)
    answer_type: str                               # "other" etc. from the annotation file ("" without it)
    position: tuple[float, float, float] | None    # agent position in the ScanNet scene frame
    rotation: tuple[float, float, float, float] | None   # agent quaternion (x, y, z, w)

    @property
    def uid(self) -> str:
        return str(self.question_id)

    @property
    def prompt(self) -> str:
        """`situation + " " + question`, the convention of Video-3D-LLM / LEO / Chat-Scene."""
        return f"{self.situation} {self.question}"


def find_sqa3d_pair(paths: list[str | os.PathLike]) -> tuple[Path, Path | None]:
    """Order (questions, annotations) from one or two paths; with only the questions file, look for the
    sibling `..._sqa_annotations_...` file of the official naming."""
    if not paths or len(paths) > 2:
        raise DataError("SQA3D needs the questions file and (optionally) the annotations file")
    tops = []
    for p in paths:
        obj = read_json(p, "SQA3D")
        if not isinstance(obj, dict) or not ({"questions", "annotations"} & obj.keys()):
            raise DataError(f"{p}: not an SQA3D file (expected a JSON object with a 'questions' or 'annotations' list)")
        tops.append("questions" if "questions" in obj else "annotations")
    if len(paths) == 2:
        if sorted(tops) != ["annotations", "questions"]:
            raise DataError(f"SQA3D: expected one questions file and one annotations file, got {tops}")
        q, a = (paths[0], paths[1]) if tops[0] == "questions" else (paths[1], paths[0])
        return Path(q), Path(a)
    if tops[0] != "questions":
        raise DataError(f"{paths[0]}: this is an SQA3D annotations file; give the questions file too")
    q = Path(paths[0])
    sibling = q.with_name(q.name.replace("_questions_", "_sqa_annotations_"))
    return q, (sibling if sibling != q and sibling.is_file() else None)


def _vec(obj: Any, keys: tuple[str, ...]) -> tuple[float, ...] | None:
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), (int, float)) for k in keys):
        return None
    return tuple(float(obj[k]) for k in keys)


def load_sqa3d(questions: str | os.PathLike, annotations: str | os.PathLike | None = None,
               problems: Problems | None = None) -> list[SQA3DQuestion]:
    """Read `v1_balanced_questions_{split}_scannetv2.json` and join `v1_balanced_sqa_annotations_{split}_...`.

    Every question needs exactly one annotation with the same `question_id` and scene when an annotation file
    is given; duplicates, orphans and ill-typed fields raise `DataError` (or are listed, with a lenient
    `Problems`).
    """
    problems = problems if problems is not None else Problems()
    qpath = Path(questions)
    qtop = read_json(qpath, "SQA3D questions")
    if not isinstance(qtop, dict) or not isinstance(qtop.get("questions"), list):
        raise DataError(f"{qpath}: expected a JSON object with a 'questions' list (SQA3D questions file)")
    ann_by_id: dict[int, dict] = {}
    apath = Path(annotations) if annotations is not None else None
    if apath is not None:
        atop = read_json(apath, "SQA3D annotations")
        if not isinstance(atop, dict) or not isinstance(atop.get("annotations"), list):
            raise DataError(f"{apath}: expected a JSON object with an 'annotations' list (SQA3D annotations file)")
        for i, rec in enumerate(atop["annotations"]):
            missing = missing_fields(rec, ("question_id", "scene_id", "answers"))
            if missing:
                problems.add(f"{where(apath, i)}: missing field(s) {', '.join(missing)}")
                continue
            qid = rec["question_id"]
            at = where(apath, i, qid)
            answers = rec["answers"]
            if not is_int(qid):
                problems.add(f"{at}: question_id must be an integer")
            elif qid in ann_by_id:
                problems.add(f"{at}: duplicate question_id")
            elif (not isinstance(answers, list) or not answers
                  or not all(isinstance(a, dict) and isinstance(a.get("answer"), str) for a in answers)):
                problems.add(f"{at}: answers must be a non-empty list of {{'answer': str, ...}} objects")
            else:
                ann_by_id[qid] = rec
    out: list[SQA3DQuestion] = []
    seen: set[int] = set()
    for i, rec in enumerate(qtop["questions"]):
        missing = missing_fields(rec, ("question_id", "scene_id", "situation", "question"))
        if missing:
            problems.add(f"{where(qpath, i)}: missing field(s) {', '.join(missing)}")
            continue
        qid = rec["question_id"]
        at = where(qpath, i, qid)
        if not is_int(qid):
            problems.add(f"{at}: question_id must be an integer")
            continue
        bad_scene = scene_id_problem(rec["scene_id"])
        if bad_scene:
            problems.add(f"{at}: {bad_scene}")
            continue
        if not isinstance(rec["situation"], str) or not isinstance(rec["question"], str):
            problems.add(f"{at}: situation and question must be strings")
            continue
        alternatives = str_list(rec.get("alternative_situation", []))
        if alternatives is None:
            problems.add(f"{at}: alternative_situation must be a list of strings")
            continue
        if qid in seen:
            problems.add(f"{at}: duplicate question_id")
            continue
        answers: tuple[str, ...] = ()
        answer_type, position, rotation = "", None, None
        if apath is not None:
            ann = ann_by_id.pop(qid, None)
            if ann is None:
                problems.add(f"{at}: no annotation with this question_id in {apath}")
                continue
            if ann["scene_id"] != rec["scene_id"]:
                problems.add(f"{at}: scene {rec['scene_id']!r} but its annotation says {ann['scene_id']!r}")
                continue
            answers = tuple(a["answer"] for a in ann["answers"])
            answer_type = str(ann.get("answer_type", ""))
            position = _vec(ann.get("position"), ("x", "y", "z"))
            rotation = _vec(ann.get("rotation"), ("_x", "_y", "_z", "_w"))
        seen.add(qid)
        out.append(SQA3DQuestion(qid, rec["scene_id"], rec["situation"], alternatives, rec["question"], answers,
                                 sqa3d_question_type(rec["question"]), answer_type, position, rotation))  # type: ignore[arg-type]
    for qid in ann_by_id:
        problems.add(f"{apath}: annotation for question_id {qid} has no question in {qpath}")
    return out
