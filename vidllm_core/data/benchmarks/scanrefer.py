"""ScanRefer loader and the Scan2Cap evaluation corpus built from it (Chen et al., ECCV 2020 / CVPR 2021;
FORMATS.md sec. 3-4, corpus rule of Scan2Cap `lib/eval_helper.py:prepare_corpus`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidllm_core.data.benchmarks._common import (Problems, as_int, expect_list, missing_fields, read_json,
                                                 scene_id_problem, str_list, where)
from vidllm_core.errors import DataError

SCAN2CAP_MAX_DES_LEN = 30   # Scan2Cap CONF.TRAIN.MAX_DES_LEN: references keep the first 30 tokens


@dataclass(frozen=True)
class ScanReferDescription:
    """One ScanRefer description. The file stores `object_id` and `ann_id` as strings; they are ints here."""

    scene_id: str
    object_id: int            # ScanNet objectId (aggregation file)
    object_name: str          # ScanNet raw label, spaces written as "_"
    ann_id: int               # index of the description for that object
    description: str
    tokens: tuple[str, ...]

    @property
    def uid(self) -> str:
        """`scene|object_id|ann_id`: unique in the real files (ScanRefer test: 5,410 of 5,410)."""
        return f"{self.scene_id}|{self.object_id}|{self.ann_id}"

    @property
    def object_key(self) -> str:
        """Scan2Cap corpus key `scene|object_id|object_name`."""
        return f"{self.scene_id}|{self.object_id}|{self.object_name}"


def load_scanrefer(path: str | os.PathLike, problems: Problems | None = None) -> list[ScanReferDescription]:
    """Read `ScanRefer_filtered_{train,val,test}.json` (a JSON list); ids may be strings (real files) or ints."""
    path = Path(path)
    problems = problems if problems is not None else Problems()
    rows = expect_list(read_json(path, "ScanRefer annotations"), path, "ScanRefer")
    out: list[ScanReferDescription] = []
    seen: set[str] = set()
    for i, rec in enumerate(rows):
        missing = missing_fields(rec, ("scene_id", "object_id", "object_name", "ann_id", "description"))
        if missing:
            problems.add(f"{where(path, i)}: missing field(s) {', '.join(missing)}")
            continue
        at = where(path, i, f"{rec['scene_id']}|{rec['object_id']}|{rec['ann_id']}")
        bad_scene = scene_id_problem(rec["scene_id"])
        if bad_scene:
            problems.add(f"{at}: {bad_scene}")
            continue
        object_id, ann_id = as_int(rec["object_id"]), as_int(rec["ann_id"])
        if object_id is None or ann_id is None:
            problems.add(f"{at}: object_id and ann_id must be integers (or integer strings)")
            continue
        if not isinstance(rec["object_name"], str) or not isinstance(rec["description"], str):
            problems.add(f"{at}: object_name and description must be strings")
            continue
        tokens = str_list(rec.get("token", rec["description"].split()))
        if tokens is None:
            problems.add(f"{at}: token must be a list of strings")
            continue
        item = ScanReferDescription(rec["scene_id"], object_id, rec["object_name"], ann_id, rec["description"], tokens)
        if item.uid in seen:
            problems.add(f"{at}: duplicate (scene_id, object_id, ann_id)")
            continue
        seen.add(item.uid)
        out.append(item)
    return out


@dataclass(frozen=True)
class Scan2CapObject:
    """One Scan2Cap evaluation object: corpus key and its reference captions (`sos ... eos`)."""

    key: str                      # "scene|object_id|object_name"
    scene_id: str
    object_id: int
    object_name: str
    references: tuple[str, ...]

    @property
    def uid(self) -> str:
        return self.key


def scan2cap_corpus(descriptions: list[ScanReferDescription], max_len: int = SCAN2CAP_MAX_DES_LEN
                    ) -> list[Scan2CapObject]:
    """Group ScanRefer descriptions by object: references `"sos " + " ".join(token[:max_len]) + " eos"`."""
    groups: dict[str, list[ScanReferDescription]] = {}
    for d in descriptions:
        groups.setdefault(d.object_key, []).append(d)
    return [Scan2CapObject(key, ds[0].scene_id, ds[0].object_id, ds[0].object_name,
                           tuple("sos " + " ".join(d.tokens[:max_len]) + " eos" for d in ds))
            for key, ds in groups.items()]


def parse_object_key(key: str) -> tuple[str, int, str]:
    """`scene|object_id|object_name` -> parts; DataError if it does not have that shape."""
    parts = key.split("|")
    oid = as_int(parts[1]) if len(parts) == 3 else None
    if oid is None or scene_id_problem(parts[0]):
        raise DataError(f"Scan2Cap key {key!r} is not 'scene|object_id|object_name'")
    return parts[0], oid, parts[2]


def load_scan2cap(path: str | os.PathLike, problems: Problems | None = None) -> list[Scan2CapObject]:
    """Scan2Cap objects from either a ScanRefer file (JSON list; the corpus is built here) or a ready corpus
    file (JSON object `{"scene|object_id|object_name": [reference, ...]}`, as Scan2Cap / LEO ship it)."""
    path = Path(path)
    problems = problems if problems is not None else Problems()
    obj = read_json(path, "Scan2Cap annotations")
    if isinstance(obj, list):
        return scan2cap_corpus(load_scanrefer(path, problems))
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a ScanRefer list or a Scan2Cap corpus object, got {type(obj).__name__}")
    out = []
    for i, (key, refs) in enumerate(obj.items()):
        try:
            scene_id, oid, name = parse_object_key(key)
        except DataError as exc:
            problems.add(f"{where(path, i, key)}: {exc}")
            continue
        refs_t = str_list(refs)
        if not refs_t:
            problems.add(f"{where(path, i, key)}: references must be a non-empty list of strings")
            continue
        out.append(Scan2CapObject(key, scene_id, oid, name, refs_t))
    return out
