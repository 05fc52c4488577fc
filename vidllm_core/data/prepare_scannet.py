"""`vidllm prepare scannet`: raw ScanNet scans + posed-image folders -> one prepared folder (`data.prepared` format):
per-scene axis alignment and labelled object boxes, an index, and every GT box in one file (not in the paper:
data preparation). Resumable: a scene whose inputs and options are unchanged is not read again; every scene file
is written atomically; a scene that fails is one line and the others still prepare."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.data import prepared as fmt
from vidllm_core.data.benchmarks._common import read_json, scene_id_problem, scene_path
from vidllm_core.errors import DataError

MAX_EXAMPLES = 3


@dataclass
class PrepareReport:
    """What a run did: scenes written now, scenes unchanged since an earlier run, failures (scene -> one line), and
    counted warnings (one line each) that the index also records."""

    prepared: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _fingerprint(scan_dir: Path, posed_dir: Path, scene_id: str) -> dict[str, Any]:
    """Size and mtime of each scan file, and of the posed-images folder its file count, total size and newest mtime
    (thousands of frames per scene); a changed, added or removed file makes the scene prepare again."""
    from vidllm_core.data.benchmarks.scannet_scan import scan_files

    out: dict[str, Any] = {f"scans/{p.name}": _stat(p) for p in scan_files(scan_dir, scene_id).values()}
    stats = [_stat(p) for p in posed_dir.iterdir() if p.is_file()] if posed_dir.is_dir() else []
    stats = [s for s in stats if s is not None]
    out["posed_images"] = [len(stats), sum(s[0] for s in stats), max((s[1] for s in stats), default=0)]
    return out


def _posed_summary(posed_dir: Path, scene_id: str) -> tuple[int, list[str]]:
    """Frames with a pose file, and the folder's problems (no frames or no intrinsics fail the scene)."""
    from vidllm_core.data.benchmarks import Problems, load_scannet_scene

    if not posed_dir.is_dir():
        raise DataError(f"{posed_dir}: posed-images folder not found")
    problems = Problems(strict=False)
    scene = load_scannet_scene(posed_dir, scene_id, problems)
    if not scene.frames or scene.intrinsic_color is None:
        raise DataError(problems.messages[0] if problems.messages else f"{posed_dir}: no usable frames")
    return sum(f.pose is not None for f in scene.frames), problems.messages


def _scene_doc(scans: Path, posed: Path, scene_id: str, labels: Mapping[str, tuple[int, str]] | None,
               allow_missing_alignment: bool, fingerprint: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    from vidllm_core.data.benchmarks.scannet_scan import scan_objects

    scan = scan_objects(scene_path(scans, scene_id), scene_id, allow_missing_alignment=allow_missing_alignment)
    frames, posed_problems = _posed_summary(scene_path(posed, scene_id), scene_id)
    objects = []
    for o in scan.objects:
        nyu = labels.get(o.label) if labels is not None else None
        objects.append({"object_id": o.object_id, "label": o.label,
                        "nyu40_id": nyu[0] if nyu else None, "nyu40_class": nyu[1] if nyu else None,
                        "box": [float(v) for v in o.box], "num_vertices": o.num_vertices})
    return {"scene_id": scene_id, "axis_align": scan.axis_align.tolist(), "alignment": scan.alignment,
            "posed_images": str(scene_path(posed, scene_id).resolve()), "frames": frames,
            "objects": objects, "objects_without_vertices": list(scan.empty_objects),
            "posed_images_problems": posed_problems, "inputs": fingerprint, "options": options}


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    return {"file": f"{fmt.SCENES_SUBDIR}/{doc['scene_id']}.json", "posed_images": doc["posed_images"],
            "alignment": doc["alignment"], "objects": len(doc["objects"]), "frames": doc["frames"]}


def _previous(path: Path) -> dict[str, Any] | None:
    try:
        doc = read_json(path, "prepared scene")
    except DataError:
        return None
    return doc if isinstance(doc, dict) else None


def discover_scenes(scans: str | os.PathLike) -> list[str]:
    """Every scene folder under `scans/` (sorted)."""
    root = Path(scans)
    if not root.is_dir():
        raise DataError(f"{root}: scans folder not found")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def prepare_scannet(scans: str | os.PathLike, posed_images: str | os.PathLike, out: str | os.PathLike, *,
                    scene_ids: Sequence[str] | None = None, label_map: str | os.PathLike | None = None,
                    allow_missing_alignment: bool = False,
                    on_scene: Callable[[str, str], None] | None = None) -> PrepareReport:
    """Prepare `scene_ids` (default: every folder under `scans`) into `out`; `on_scene(scene_id, outcome)` is
    called once per scene (outcome: prepared | unchanged | failed). Scenes of an earlier run stay in the index."""
    from vidllm_core.data.benchmarks.scannet import save_gt_boxes_file
    from vidllm_core.data.benchmarks.scannet_scan import read_label_map
    from vidllm_core.io import write_json_atomic

    scans, posed, out = Path(scans), Path(posed_images), Path(out)
    if not scans.is_dir():
        raise DataError(f"{scans}: scans folder not found")
    if not posed.is_dir():
        raise DataError(f"{posed}: posed-images folder not found")
    labels = read_label_map(label_map) if label_map is not None else None
    options = {"format_version": fmt.VERSION, "allow_missing_alignment": bool(allow_missing_alignment),
               "label_map": _stat(Path(label_map)) if label_map is not None else None}
    old_index = fmt.load_prepared(out).index if fmt.is_prepared(out) else None
    scenes: dict[str, Any] = dict(old_index["scenes"]) if old_index else {}
    failed: dict[str, str] = dict(old_index.get("failed", {})) if old_index else {}
    report = PrepareReport()
    ids = list(scene_ids) if scene_ids is not None else discover_scenes(scans)
    for scene_id in ids:
        bad = scene_id_problem(scene_id)
        target = out / fmt.SCENES_SUBDIR / f"{scene_id}.json"
        try:
            if bad:
                raise DataError(bad)
            if not scene_path(scans, scene_id).is_dir():
                raise DataError(f"{scene_path(scans, scene_id)}: scan folder not found")
            fingerprint = _fingerprint(scene_path(scans, scene_id), scene_path(posed, scene_id), scene_id)
            prev = _previous(target) if target.is_file() else None
            if prev is not None and prev.get("inputs") == fingerprint and prev.get("options") == options:
                doc, outcome = prev, "unchanged"
            else:
                doc, outcome = _scene_doc(scans, posed, scene_id, labels, allow_missing_alignment, fingerprint,
                                          options), "prepared"
                write_json_atomic(target, doc)
        except (DataError, OSError) as exc:
            message = str(exc) if isinstance(exc, DataError) else f"{exc.filename}: {exc.strerror}"
            report.failed[scene_id] = failed[scene_id] = message
            scenes.pop(scene_id, None)
            if not bad:
                target.unlink(missing_ok=True)   # never leave a box from inputs that no longer read
            outcome = "failed"
        else:
            scenes[scene_id] = _entry(doc)
            failed.pop(scene_id, None)
            (report.prepared if outcome == "prepared" else report.unchanged).append(scene_id)
            report.warnings.extend(_scene_warnings(doc))
        if on_scene is not None:
            on_scene(scene_id, outcome)
    index = {"format": fmt.FORMAT, "version": fmt.VERSION, "scans": str(scans.resolve()),
             "posed_images": str(posed.resolve()), "label_map": str(Path(label_map).resolve()) if label_map else None,
             "gt_boxes": fmt.GT_BOXES_NAME, "scenes": dict(sorted(scenes.items())),
             "failed": dict(sorted(failed.items())),
             "annotation_check": old_index.get("annotation_check", {}) if old_index else {}}
    boxes = {}
    for scene_id, entry in index["scenes"].items():
        doc = read_json(out / entry["file"], "prepared scene")
        boxes[scene_id] = {int(o["object_id"]): np.asarray(o["box"]) for o in doc["objects"]}
    save_gt_boxes_file(out / fmt.GT_BOXES_NAME, boxes)
    write_json_atomic(out / fmt.INDEX_NAME, index)
    return report


def _scene_warnings(doc: dict[str, Any]) -> list[str]:
    sid, out = doc["scene_id"], []
    if doc["alignment"] != "file":
        out.append(f"{sid}: no axis alignment; identity used (--allow-missing-alignment, recorded in the index)")
    if doc["objects_without_vertices"]:
        ids = ", ".join(map(str, doc["objects_without_vertices"][:MAX_EXAMPLES]))
        out.append(f"{sid}: {len(doc['objects_without_vertices'])} aggregation object(s) have no mesh vertex and "
                   f"no box (e.g. {ids})")
    if doc["posed_images_problems"]:
        out.append(f"{sid}: {len(doc['posed_images_problems'])} posed-image problem(s), e.g. "
                   f"{doc['posed_images_problems'][0]}")
    return out


def _referred(record: Any) -> Iterable[int]:
    for name in ("object_ids", "distractor_ids", "anchor_ids"):
        yield from getattr(record, name, ()) or ()
    for name in ("object_id", "target_id"):
        value = getattr(record, name, None)
        if value is not None:
            yield value


def check_annotations(out: str | os.PathLike, annotations: Mapping[str, Sequence[Any]]) -> list[str]:
    """Check annotation records (name -> loaded records with `scene_id` and object ids) against the prepared
    folder: records of scenes not prepared and objects not in their scan are counted, one warning line per kind
    and file, and recorded in the index under `annotation_check`. Returns the warning lines."""
    from vidllm_core.io import write_json_atomic

    prepared = fmt.load_prepared(out)
    boxes = {s: set(prepared.boxes(s)) for s in prepared.scene_ids}
    lines, check = [], {}
    for name, records in annotations.items():
        no_scene, no_object = [], []
        for r in records:
            if r.scene_id not in boxes:
                no_scene.append(r.scene_id)
                continue
            absent = sorted({o for o in _referred(r) if o not in boxes[r.scene_id]})
            if absent:
                no_object.append(f"{r.scene_id} object {absent[0]}")
        check[name] = {"records": len(records), "scene_not_prepared": len(no_scene),
                       "object_not_in_scan": len(no_object),
                       "examples": sorted(set(no_scene))[:MAX_EXAMPLES] + no_object[:MAX_EXAMPLES]}
        if no_scene:
            lines.append(f"{name}: {len(no_scene)} of {len(records)} record(s) are for scenes not prepared "
                         f"(e.g. {', '.join(sorted(set(no_scene))[:MAX_EXAMPLES])}); training and eval cannot use them")
        if no_object:
            lines.append(f"{name}: {len(no_object)} of {len(records)} record(s) refer to objects not in the scan "
                         f"(e.g. {', '.join(no_object[:MAX_EXAMPLES])}); they have no GT box")
    index = dict(prepared.index)
    index["annotation_check"] = {**index.get("annotation_check", {}), **check}
    write_json_atomic(Path(out) / fmt.INDEX_NAME, index)
    return lines
