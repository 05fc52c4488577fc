"""Per-scene 3D object proposals (the paper's Mask3D proposals for ScanRefer / Scan2Cap, Sec. 4): the files prior
work publishes, read and converted into one format (issue 12; the formats are in docs/evaluation.md "Proposals").

Read (`read_proposals(dir, scene)`, scene frame = the axis-aligned frame of the GT boxes):
- `<scene>.json`: `{"scene_id": ..., "boxes": [[cx, cy, cz, dx, dy, dz], ...], "scores": [...]}` (what the
  converter writes), a plain list of boxes, or a list of `{"box": [...], "score": s}`.
- `<scene>.npy`: float array (K, 6), or (K, 7) whose last column is a score.
Convert (`convert_proposals`): a Chat-Scene / Chat-3D-style attribute dump (`scannet_mask3d_<split>_attributes.pt`
or the same as JSON: `{scene: {"locs": [[cx, cy, cz, dx, dy, dz], ...], ...}}`), a JSON `{scene: [[...], ...]}`,
or a folder of per-scene files; `box_format="minmax"` reads `[xmin, ymin, zmin, xmax, ymax, zmax]` boxes.

Bad input never crashes a run and never scores silently: a file naming another scene is refused (one line), rows
with NaN / inf or a size <= 0 are dropped and counted (`Proposals.dropped`), an empty list is returned as such and
the caller counts it (`ProposalLog`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError

__all__ = ["ProposalLog", "Proposals", "convert_proposals", "read_proposals", "validate_boxes"]

BOX_FORMATS = ("center_size", "minmax")


@dataclass(frozen=True)
class Proposals:
    """boxes [K, 6] centre + size (finite, sizes > 0), scores [K] or None, dropped: invalid rows removed."""

    scene_id: str
    boxes: np.ndarray
    scores: np.ndarray | None
    dropped: int
    path: Path


def validate_boxes(values: Any, where: str, box_format: str = "center_size",
                   scores: Any = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(boxes [K, 6] centre + size, scores [K] or None, dropped) from a (K, 6) array-like; rows with NaN / inf or a
    size <= 0 are dropped and counted. A wrong shape raises DataError naming `where`."""
    if box_format not in BOX_FORMATS:
        raise DataError(f"unknown box format {box_format!r}; use {' or '.join(BOX_FORMATS)}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: proposals must be a list of [cx, cy, cz, dx, dy, dz] boxes (numbers)") from None
    if arr.size == 0:
        return np.zeros((0, 6)), None if scores is None else np.zeros(0), 0
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise DataError(f"{where}: proposals must be a (K, 6) list of boxes, got shape {arr.shape}")
    sc = None
    if scores is not None:
        try:
            sc = np.asarray(scores, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"{where}: scores must be numbers") from None
        if len(sc) != len(arr):
            raise DataError(f"{where}: {len(sc)} scores for {len(arr)} boxes")
    if box_format == "minmax":
        arr = np.concatenate([(arr[:, :3] + arr[:, 3:]) / 2, arr[:, 3:] - arr[:, :3]], axis=1)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(arr).all(1) & (arr[:, 3:] > 0).all(1)
    if sc is not None:
        keep &= np.isfinite(sc)
        sc = sc[keep]
    return arr[keep], sc, int((~keep).sum())


def _from_json(obj: Any, where: str, scene_id: str) -> tuple[Any, Any]:
    if isinstance(obj, dict):
        named = obj.get("scene_id")
        if named is not None and str(named) != scene_id:
            raise DataError(f"{where}: this proposal file is for scene {named!r}, not {scene_id!r}")
        if "boxes" not in obj:
            raise DataError(f"{where}: expected {{\"scene_id\", \"boxes\": [[cx, cy, cz, dx, dy, dz], ...]}}")
        return obj["boxes"], obj.get("scores")
    if isinstance(obj, list) and obj and all(isinstance(b, dict) for b in obj):
        try:
            return [b["box"] for b in obj], [b["score"] for b in obj] if all("score" in b for b in obj) else None
        except KeyError:
            raise DataError(f"{where}: every entry needs a \"box\"") from None
    return obj, None


def read_proposals(directory: str | os.PathLike, scene_id: str) -> Proposals:
    """The proposals of one scene from `<directory>/<scene>.json` or `.npy` (module doc); DataError when neither
    exists or the file is unreadable, names another scene or has the wrong shape."""
    from vidllm_core.data.benchmarks._common import read_json, scene_path

    base = scene_path(directory, scene_id)
    js, npy = base.with_name(f"{scene_id}.json"), base.with_name(f"{scene_id}.npy")
    if js.is_file():
        boxes, scores = _from_json(read_json(js, "proposals"), str(js), scene_id)
        path = js
    elif npy.is_file():
        try:
            arr = np.load(npy, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{npy}: unreadable proposals ({exc})") from None
        arr = np.asarray(arr)
        if arr.ndim == 2 and arr.shape[1] == 7:
            boxes, scores = arr[:, :6], arr[:, 6]
        else:
            boxes, scores = arr, None
        path = npy
    else:
        raise DataError(f"no proposals for scene {scene_id} in {directory} (expected {scene_id}.json or .npy)")
    b, s, dropped = validate_boxes(boxes, str(path), scores=scores)
    return Proposals(scene_id, b, s, dropped, path)


@dataclass
class ProposalLog:
    """Counts what `read_proposals` dropped or found empty during a run and keeps one up-to-date line per kind
    in `notes` (the list a run stores in metrics.json)."""

    notes: list[str]
    dropped_rows: int = 0
    dropped_scenes: set[str] = field(default_factory=set)
    empty_scenes: set[str] = field(default_factory=set)

    def record(self, p: Proposals) -> None:
        if p.dropped and p.scene_id not in self.dropped_scenes:
            self.dropped_scenes.add(p.scene_id)
            self.dropped_rows += p.dropped
            self._set("proposals: dropped", f"proposals: dropped {self.dropped_rows} box(es) with NaN / inf "
                      f"coordinates or a size <= 0 in {len(self.dropped_scenes)} scene(s)")
        if not len(p.boxes) and p.scene_id not in self.empty_scenes:
            self.empty_scenes.add(p.scene_id)
            self._set("proposals: no valid", f"proposals: no valid proposal in {len(self.empty_scenes)} scene(s) "
                      "(their queries are answered with no box, scored as misses)")

    def _set(self, prefix: str, line: str) -> None:
        import warnings

        for i, old in enumerate(self.notes):
            if old.startswith(prefix):
                self.notes[i] = line
                break
        else:
            self.notes.append(line)
            warnings.warn(line, stacklevel=3)


def _load_source(src: Path) -> dict[str, tuple[Any, Any]]:
    """{scene: (boxes, scores)} of a combined dump (.pt / .json) or a folder of per-scene files."""
    if src.is_dir():
        out = {}
        for p in sorted(src.iterdir()):
            if p.suffix.lower() in (".json", ".npy") and not p.name.startswith("."):
                raw = read_raw(src, p.stem)
                out[p.stem] = raw
        return out
    if src.suffix.lower() == ".pt":
        import torch

        try:
            obj = torch.load(src, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 (pickle / zip errors of every kind)
            raise DataError(f"{src}: unreadable proposal dump ({str(exc).splitlines()[0]})") from None
    elif src.suffix.lower() == ".json":
        from vidllm_core.data.benchmarks._common import read_json

        obj = read_json(src, "proposal dump")
    else:
        raise DataError(f"{src}: expected a .pt or .json proposal dump, or a folder of <scene>.json / .npy files")
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{src}: expected {{scene_id: {{\"locs\": [[cx, cy, cz, dx, dy, dz], ...]}}}}")
    out = {}
    for scene, value in obj.items():
        if isinstance(value, dict):
            boxes = value.get("locs", value.get("boxes"))
            if boxes is None:
                raise DataError(f"{src}: scene {scene!r} has no \"locs\" (or \"boxes\") entry")
            scores = value.get("scores")
        else:
            boxes, scores = value, None
        out[str(scene)] = (_as_list(boxes), None if scores is None else _as_list(scores))
    return out


def _as_list(x: Any) -> Any:
    return x.tolist() if hasattr(x, "tolist") else x


def read_raw(directory: Path, scene_id: str) -> tuple[Any, Any]:
    """(boxes, scores) of a per-scene file before validation (for the converter, which may reinterpret them)."""
    from vidllm_core.data.benchmarks._common import read_json

    js, npy = directory / f"{scene_id}.json", directory / f"{scene_id}.npy"
    if js.is_file():
        return _from_json(read_json(js, "proposals"), str(js), scene_id)
    try:
        arr = np.load(npy, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{npy}: unreadable proposals ({exc})") from None
    return (arr[:, :6], arr[:, 6]) if arr.ndim == 2 and arr.shape[1] == 7 else (arr, None)


def convert_proposals(src: str | os.PathLike, out_dir: str | os.PathLike, box_format: str = "center_size",
                      scenes: set[str] | None = None) -> dict[str, dict[str, int]]:
    """Write `<out_dir>/<scene>.json` (`{"scene_id", "boxes", "scores", "source"}`, centre + size) for every scene
    of `src` (module doc), or only `scenes`. Returns {scene: {"kept", "dropped"}}; invalid rows are dropped and
    counted, never written."""
    from vidllm_core.data.benchmarks._common import scene_id_problem
    from vidllm_core.io import write_json_atomic

    src, out = Path(src), Path(out_dir)
    if not src.exists():
        raise DataError(f"proposal source not found: {src}")
    data = _load_source(src)
    if scenes is not None:
        missing = sorted(scenes - set(data))
        if missing:
            raise DataError(f"{src}: no proposals for {len(missing)} scene(s), e.g. {missing[0]}")
        data = {k: v for k, v in data.items() if k in scenes}
    report = {}
    for scene, (boxes, scores) in sorted(data.items()):
        bad = scene_id_problem(scene)
        if bad:
            raise DataError(f"{src}: {bad}")
        b, s, dropped = validate_boxes(boxes, f"{src}: scene {scene}", box_format, scores)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / f"{scene}.json", {
            "scene_id": scene, "boxes": np.round(b, 6).tolist(),
            "scores": None if s is None else np.round(s, 6).tolist(), "source": src.name}, indent=None)
        report[scene] = {"kept": int(len(b)), "dropped": dropped}
    return report
