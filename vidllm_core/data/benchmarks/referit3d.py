"""Nr3D / Sr3D (ReferIt3D, Achlioptas et al., ECCV 2020) CSV loader with the easy/hard and view-dependent
labels of `referit3d/analysis` (FORMATS.md sec. 6)."""

from __future__ import annotations

import ast
import csv
import os
from dataclasses import dataclass
from pathlib import Path

from vidllm_core.data.benchmarks._common import Problems, as_int, scene_id_problem, where
from vidllm_core.errors import DataError

# referit3d/analysis/utterances.py:is_explicitly_view_dependent
VIEW_DEPENDENT_WORDS = frozenset({"front", "behind", "back", "right", "left", "facing", "leftmost", "rightmost",
                                  "looking", "across"})
REQUIRED = ("scan_id", "target_id", "utterance", "stimulus_id", "instance_type", "tokens")


@dataclass(frozen=True)
class ReferIt3DUtterance:
    """One Nr3D or Sr3D utterance.

    `uid` is the 0-based data-row index as text: stimulus ids repeat (a stimulus has several utterances, and the
    real nr3d_test.csv even has 21 exact duplicate (stimulus, speaker, listener) triples), so no field is unique.
    """

    uid: str
    dataset: str                     # "nr3d" | "sr3d" (the `dataset` column, else the file name)
    scene_id: str                    # `scan_id`
    stimulus_id: str
    utterance: str
    tokens: tuple[str, ...]
    target_id: int
    instance_type: str
    n_objects_of_class: int          # from stimulus_id: target + same-class distractors
    distractor_ids: tuple[int, ...]  # from stimulus_id
    anchor_ids: tuple[int, ...]      # Sr3D only
    reference_type: str              # Sr3D only ("" for Nr3D)
    mentions_target_class: bool | None
    correct_guess: bool | None

    @property
    def hard(self) -> bool:
        """Hard: more than two objects of the target class in the scene (>= 2 distractors)."""
        return self.n_objects_of_class > 2

    @property
    def view_dependent(self) -> bool:
        return bool(VIEW_DEPENDENT_WORDS.intersection(self.tokens))


def _bool(text: str | None) -> bool | None:
    return {"True": True, "False": False, "true": True, "false": False}.get(text or "")


def _literal_list(text: str, kind: type) -> list | None:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        return value
    return None


def parse_stimulus_id(stimulus_id: str, scan_id: str, instance_type: str) -> tuple[int, int, tuple[int, ...]]:
    """`{scan}-{type with _}-{n_objects}-{target}-{distractor ids...}` -> (n_objects, target, distractors)."""
    prefix = f"{scan_id}-{instance_type.replace(' ', '_')}-"
    rest = stimulus_id[len(prefix):] if stimulus_id.startswith(prefix) else stimulus_id.split("-", 2)[-1]
    fields = rest.split("-")
    numbers = [as_int(f) for f in fields]
    if len(numbers) < 2 or any(n is None for n in numbers):
        raise DataError(f"stimulus_id {stimulus_id!r} is not 'scan-type-n_objects-target-distractors'")
    return numbers[0], numbers[1], tuple(numbers[2:])  # type: ignore[return-value]


def load_referit3d(path: str | os.PathLike, problems: Problems | None = None) -> list[ReferIt3DUtterance]:
    """Read an Nr3D or Sr3D CSV (`nr3d.csv`, `nr3d_test.csv`, `sr3d_test.csv`, ...) with the csv module."""
    path = Path(path)
    problems = problems if problems is not None else Problems()
    if not path.is_file():
        raise DataError(f"ReferIt3D CSV file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, strict=True)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DataError(f"{path}: not an Nr3D/Sr3D CSV: header lacks column(s) {', '.join(missing)}")
            rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not rows:
        raise DataError(f"{path}: no data rows")
    default_dataset = "sr3d" if "sr3d" in path.name.lower() else "nr3d"
    out: list[ReferIt3DUtterance] = []
    for i, row in enumerate(rows):
        at = where(path, i, row.get("stimulus_id"))
        if None in row or any(row.get(c) is None for c in header):
            problems.add(f"{at}: has {len(header)} columns in the header but a different number in this row")
            continue
        bad_scene = scene_id_problem(row["scan_id"])
        if bad_scene:
            problems.add(f"{at}: {bad_scene}")
            continue
        target = as_int(row["target_id"])
        tokens = _literal_list(row["tokens"], str)
        if target is None or tokens is None:
            problems.add(f"{at}: target_id must be an integer and tokens a list of strings")
            continue
        try:
            n_objects, stim_target, distractors = parse_stimulus_id(row["stimulus_id"], row["scan_id"],
                                                                    row["instance_type"])
        except DataError as exc:
            problems.add(f"{at}: {exc}")
            continue
        if stim_target != target:
            problems.add(f"{at}: target_id {target} differs from the stimulus_id's target {stim_target}")
            continue
        anchors = _literal_list(row["anchor_ids"], int) if row.get("anchor_ids") else []
        if anchors is None:
            problems.add(f"{at}: anchor_ids must be a list of integers")
            continue
        out.append(ReferIt3DUtterance(
            uid=str(i), dataset=(row.get("dataset") or default_dataset), scene_id=row["scan_id"],
            stimulus_id=row["stimulus_id"], utterance=row["utterance"], tokens=tuple(tokens), target_id=target,
            instance_type=row["instance_type"], n_objects_of_class=n_objects, distractor_ids=distractors,
            anchor_ids=tuple(anchors), reference_type=row.get("reference_type") or "",
            mentions_target_class=_bool(row.get("mentions_target_class")),
            correct_guess=_bool(row.get("correct_guess"))))
    return out
