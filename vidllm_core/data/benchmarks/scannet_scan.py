"""Objects of one raw ScanNet scan (`scans/<scene>/`): mesh vertices moved by the `<scene>.txt` axis alignment, then
per object the min/max over its segments' vertices (not in the paper: benchmark GT boxes, FORMATS.md sec. 3, 8.1 and
8.3; the AABB rule of Video-3D-LLM `extract_scannet_pcd.py:get_aabbs`)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidllm_core.data.benchmarks._common import read_json
from vidllm_core.data.benchmarks.scannet import read_axis_alignment
from vidllm_core.errors import DataError

ALIGNMENT_FILE = "file"                 # `<scene>.txt` gave the axisAlignment
ALIGNMENT_MISSING_ALLOWED = "missing-allowed"   # none found; identity used because the user asked for it
MISSING_ALIGNMENT_HINT = ("ScanNet test scans have none: pass --allow-missing-alignment to use identity, which the "
                          "output records")


@dataclass(frozen=True)
class ScanObject:
    """One aggregation group with at least one vertex: box `[cx, cy, cz, dx, dy, dz]` in metres, aligned frame."""

    object_id: int
    label: str
    box: np.ndarray
    num_vertices: int


@dataclass(frozen=True)
class ScanObjects:
    """Every object of a scan. `empty_objects`: aggregation groups none of whose segments has a vertex (no box)."""

    scene_id: str
    axis_align: np.ndarray
    alignment: str                      # ALIGNMENT_FILE | ALIGNMENT_MISSING_ALLOWED
    objects: tuple[ScanObject, ...]
    empty_objects: tuple[int, ...]

    def boxes(self) -> dict[int, np.ndarray]:
        return {o.object_id: o.box for o in self.objects}


def scan_files(scan_dir: str | os.PathLike, scene_id: str) -> dict[str, Path]:
    """The four raw files a scene's boxes come from, by role."""
    root = Path(scan_dir)
    return {"alignment": root / f"{scene_id}.txt", "mesh": root / f"{scene_id}_vh_clean_2.ply",
            "segments": root / f"{scene_id}_vh_clean_2.0.010000.segs.json",
            "aggregation": root / f"{scene_id}.aggregation.json"}


def scan_alignment(scan_dir: str | os.PathLike, scene_id: str, allow_missing: bool = False) -> tuple[np.ndarray, str]:
    """The 4x4 axis alignment from `<scene>.txt` and where it came from. A missing file or a file without an
    `axisAlignment` line is an error unless `allow_missing` (then identity, tagged ALIGNMENT_MISSING_ALLOWED)."""
    meta = scan_files(scan_dir, scene_id)["alignment"]
    found = read_axis_alignment(meta) if meta.is_file() else None
    if found is None:
        if allow_missing:
            return np.eye(4), ALIGNMENT_MISSING_ALLOWED
        what = "not found" if not meta.is_file() else "has no axisAlignment line"
        raise DataError(f"{meta}: axis alignment {what} ({MISSING_ALIGNMENT_HINT})")
    if not np.isfinite(found).all() or not np.allclose(found[3], [0, 0, 0, 1]):
        raise DataError(f"{meta}: axisAlignment is not a finite rigid 4x4 matrix (last row must be 0 0 0 1)")
    return found, ALIGNMENT_FILE


def _mesh_vertices(ply: Path) -> np.ndarray:
    import trimesh

    if not ply.is_file():
        raise DataError(f"{ply}: mesh not found")
    try:
        geom = trimesh.load(ply, process=False, force="mesh")
        verts = np.asarray(getattr(geom, "vertices", ()), dtype=np.float64)
    except Exception as exc:  # trimesh raises many types for a broken PLY  # noqa: BLE001
        raise DataError(f"{ply}: unreadable PLY mesh ({type(exc).__name__}: {exc})") from None
    if verts.ndim != 2 or verts.shape[0] == 0 or verts.shape[1] != 3 or not np.isfinite(verts).all():
        raise DataError(f"{ply}: PLY mesh has no finite vertices")
    return verts


def _segments(path: Path, num_vertices: int) -> np.ndarray:
    seg = read_json(path, "ScanNet segments")
    idx = seg.get("segIndices") if isinstance(seg, dict) else None
    if not isinstance(idx, list) or len(idx) != num_vertices:
        found = f"{len(idx)} entries" if isinstance(idx, list) else "no segIndices list"
        raise DataError(f"{path}: segIndices must list one segment per mesh vertex ({num_vertices}), found {found}")
    try:
        arr = np.asarray(idx, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: segIndices must be integers") from None
    return arr


def _groups(path: Path) -> list[tuple[int, str, np.ndarray]]:
    agg = read_json(path, "ScanNet aggregation")
    groups = agg.get("segGroups") if isinstance(agg, dict) else None
    if not isinstance(groups, list):
        raise DataError(f"{path}: no segGroups list")
    out, seen = [], set()
    for i, g in enumerate(groups):
        oid = g.get("objectId") if isinstance(g, dict) else None
        segs = g.get("segments") if isinstance(g, dict) else None
        label = g.get("label", "") if isinstance(g, dict) else None
        if (not isinstance(oid, int) or isinstance(oid, bool) or not isinstance(segs, list)
                or not isinstance(label, str)):
            raise DataError(f"{path}: segGroups[{i}] needs an integer objectId, a segments list and a label string")
        if oid in seen:
            raise DataError(f"{path}: segGroups[{i}]: objectId {oid} appears twice")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in segs):
            raise DataError(f"{path}: segGroups[{i}] (objectId {oid}): segments must be integers")
        seen.add(oid)
        out.append((oid, label, np.asarray(segs, dtype=np.int64)))
    return out


def scan_objects(scan_dir: str | os.PathLike, scene_id: str | None = None, *,
                 allow_missing_alignment: bool = False) -> ScanObjects:
    """Read the raw scan of one scene; every missing or malformed file is one `DataError` line naming it."""
    root = Path(scan_dir)
    scene_id = scene_id or root.name
    if not root.is_dir():
        raise DataError(f"{root}: scan folder not found")
    files = scan_files(root, scene_id)
    for role in ("segments", "aggregation"):
        if not files[role].is_file():
            raise DataError(f"{files[role]}: {role} file not found")
    align, source = scan_alignment(root, scene_id, allow_missing_alignment)
    verts = _mesh_vertices(files["mesh"])
    verts = verts @ align[:3, :3].T + align[:3, 3]
    seg_of_vertex = _segments(files["segments"], len(verts))
    objects, empty = [], []
    for oid, label, segs in _groups(files["aggregation"]):
        mask = np.isin(seg_of_vertex, segs)
        if not mask.any():
            empty.append(oid)
            continue
        lo, hi = verts[mask].min(0), verts[mask].max(0)
        objects.append(ScanObject(oid, label, np.concatenate([(lo + hi) / 2, hi - lo]), int(mask.sum())))
    return ScanObjects(scene_id, align, source, tuple(objects), tuple(empty))


def read_label_map(path: str | os.PathLike) -> dict[str, tuple[int, str]]:
    """raw_category -> (nyu40id, nyu40class) from ScanNet's `scannetv2-labels.combined.tsv` (FORMATS.md 8.1b)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label map not found")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        need = {"raw_category", "nyu40id", "nyu40class"}
        if not rows.fieldnames or not need <= set(rows.fieldnames):
            raise DataError(f"{path}: not scannetv2-labels.combined.tsv (needs the columns {', '.join(sorted(need))})")
        return {r["raw_category"]: (int(r["nyu40id"]), r["nyu40class"]) for r in rows
                if (r.get("nyu40id") or "").strip().isdigit()}
