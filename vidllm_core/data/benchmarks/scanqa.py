"""ScanQA loader (Azuma et al., CVPR 2022; file format in ../shared/docs/FORMATS.md sec. 1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidllm_core.data.benchmarks._common import (Problems, expect_list, int_list, missing_fields, read_json,
                                                 scene_id_problem, str_list, where)


@dataclass(frozen=True)
class ScanQAQuestion:
    """One ScanQA question. `answers` is empty for the test files (they ship without answers)."""

    question_id: str          # "{split}-scene{XXXX}-{k}"
    scene_id: str             # "sceneXXXX_YY"
    question: str
    answers: tuple[str, ...]
    object_ids: tuple[int, ...]     # ScanNet objectIds (aggregation file); empty when the file has none
    object_names: tuple[str, ...]   # ScanNet raw labels

    @property
    def uid(self) -> str:
        return self.question_id


def load_scanqa(path: str | os.PathLike, problems: Problems | None = None) -> list[ScanQAQuestion]:
    """Read `ScanQA_v1.0_{train,val,test_w_obj,test_wo_obj}.json` (a JSON list) into typed records.

    Raises `DataError` naming the file and record for a missing/ill-typed field, a duplicate `question_id` or a
    scene id that is not a plain folder name. With a lenient `Problems`, bad records are reported and skipped.
    """
    path = Path(path)
    problems = problems if problems is not None else Problems()
    rows = expect_list(read_json(path, "ScanQA annotations"), path, "ScanQA")
    out: list[ScanQAQuestion] = []
    seen: set[str] = set()
    for i, rec in enumerate(rows):
        missing = missing_fields(rec, ("question_id", "scene_id", "question"))
        if missing:
            problems.add(f"{where(path, i)}: missing field(s) {', '.join(missing)}")
            continue
        qid = rec["question_id"]
        at = where(path, i, qid)
        if not isinstance(qid, str) or not qid:
            problems.add(f"{at}: question_id must be a non-empty string")
            continue
        bad_scene = scene_id_problem(rec["scene_id"])
        if bad_scene:
            problems.add(f"{at}: {bad_scene}")
            continue
        if not isinstance(rec["question"], str):
            problems.add(f"{at}: question must be a string")
            continue
        answers = str_list(rec.get("answers", []))
        if answers is None:
            problems.add(f"{at}: answers must be a list of strings")
            continue
        object_ids = int_list(rec.get("object_ids", []))
        object_names = str_list(rec.get("object_names", []))
        if object_ids is None or object_names is None:
            problems.add(f"{at}: object_ids must be a list of ints and object_names a list of strings")
            continue
        if qid in seen:
            problems.add(f"{at}: duplicate question_id")
            continue
        seen.add(qid)
        out.append(ScanQAQuestion(qid, rec["scene_id"], rec["question"], answers, object_ids, object_names))
    return out
