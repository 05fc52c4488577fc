"""Multi3DRefer loader (Zhang et al., ICCV 2023; fields reconstructed in FORMATS.md sec. 5 from M3DRef-CLIP)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidllm_core.data.benchmarks._common import (Problems, expect_list, int_list, missing_fields, read_json,
                                                 scene_id_problem, where)

EVAL_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")


@dataclass(frozen=True)
class Multi3DReferDescription:
    """One Multi3DRefer description; `object_ids` is empty for zero-target (`zt_*`) queries."""

    scene_id: str
    ann_id: str                    # int or str in the file; kept as text
    object_name: str
    object_ids: tuple[int, ...]
    description: str
    eval_type: str                 # one of EVAL_TYPES

    @property
    def uid(self) -> str:
        return f"{self.scene_id}|{self.ann_id}"


def load_multi3drefer(path: str | os.PathLike, problems: Problems | None = None) -> list[Multi3DReferDescription]:
    """Read `multi3drefer_{train,val}.json` (a JSON list). `eval_type` must agree with the number of targets
    (zt_*: none, st_*: one, mt: two or more)."""
    path = Path(path)
    problems = problems if problems is not None else Problems()
    rows = expect_list(read_json(path, "Multi3DRefer annotations"), path, "Multi3DRefer")
    out: list[Multi3DReferDescription] = []
    seen: set[str] = set()
    for i, rec in enumerate(rows):
        missing = missing_fields(rec, ("scene_id", "ann_id", "object_ids", "description", "eval_type"))
        if missing:
            problems.add(f"{where(path, i)}: missing field(s) {', '.join(missing)}")
            continue
        at = where(path, i, f"{rec['scene_id']}|{rec['ann_id']}")
        bad_scene = scene_id_problem(rec["scene_id"])
        if bad_scene:
            problems.add(f"{at}: {bad_scene}")
            continue
        ids = int_list(rec["object_ids"])
        if ids is None or not isinstance(rec["description"], str):
            problems.add(f"{at}: object_ids must be a list of integers and description a string")
            continue
        etype = rec["eval_type"]
        if etype not in EVAL_TYPES:
            problems.add(f"{at}: eval_type {etype!r} is not one of {', '.join(EVAL_TYPES)}")
            continue
        expected = 0 if etype.startswith("zt") else 1 if etype.startswith("st") else None
        if (expected is not None and len(ids) != expected) or (expected is None and len(ids) < 2):
            problems.add(f"{at}: eval_type {etype} does not match {len(ids)} target object(s)")
            continue
        item = Multi3DReferDescription(rec["scene_id"], str(rec["ann_id"]), str(rec.get("object_name", "")), ids,
                                       rec["description"], etype)
        if item.uid in seen:
            problems.add(f"{at}: duplicate (scene_id, ann_id)")
            continue
        seen.add(item.uid)
        out.append(item)
    return out
