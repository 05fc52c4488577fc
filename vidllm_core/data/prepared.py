"""The prepared ScanNet folder `vidllm prepare scannet` writes and training and `vidllm eval` read: an index, one
file per scene (axis alignment, labelled object boxes in the aligned frame) and all GT boxes in one file (not in
the paper: data preparation; format in docs/training.md "Prepare ScanNet")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.data.benchmarks._common import read_json
from vidllm_core.errors import DataError

INDEX_NAME = "index.json"
GT_BOXES_NAME = "gt_boxes.json"
SCENES_SUBDIR = "scenes"
FORMAT = "vidllm-prepared-scannet"
VERSION = 1


def is_prepared(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding a prepared-ScanNet index."""
    return (Path(path) / INDEX_NAME).is_file()


@dataclass(frozen=True)
class PreparedScanNet:
    """A prepared folder, read once. `alignment(scene)` is "file" or "missing-allowed" (identity by the user's
    explicit `--allow-missing-alignment`); callers that place boxes record it."""

    root: Path
    index: dict[str, Any]

    @property
    def scene_ids(self) -> list[str]:
        return sorted(self.index["scenes"])

    @property
    def posed_images_root(self) -> Path:
        return Path(self.index["posed_images"])

    def _entry(self, scene_id: str) -> dict[str, Any]:
        entry = self.index["scenes"].get(scene_id)
        if entry is None:
            failed = self.index.get("failed", {}).get(scene_id)
            why = f" (preparing it failed: {failed})" if failed else ""
            raise DataError(f"{self.root / INDEX_NAME}: scene {scene_id} was not prepared{why}")
        return entry

    def scene(self, scene_id: str) -> dict[str, Any]:
        """The per-scene file `scenes/<scene>.json`."""
        path = self.root / self._entry(scene_id)["file"]
        doc = read_json(path, "prepared scene")
        if not isinstance(doc, dict) or doc.get("scene_id") != scene_id or "axis_align" not in doc:
            raise DataError(f"{path}: not a prepared scene file for {scene_id}")
        return doc

    def posed_images(self, scene_id: str) -> Path:
        return Path(self._entry(scene_id)["posed_images"])

    def alignment(self, scene_id: str) -> str:
        return str(self._entry(scene_id)["alignment"])

    def axis_align(self, scene_id: str) -> np.ndarray:
        m = np.asarray(self.scene(scene_id)["axis_align"], dtype=np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise DataError(f"{self.root / self._entry(scene_id)['file']}: axis_align must be a finite 4x4 matrix")
        return m

    def objects(self, scene_id: str) -> list[dict[str, Any]]:
        return list(self.scene(scene_id)["objects"])

    def boxes(self, scene_id: str) -> dict[int, np.ndarray]:
        return {int(o["object_id"]): np.asarray(o["box"], dtype=np.float64) for o in self.objects(scene_id)}

    def gt_boxes_path(self) -> Path:
        return self.root / GT_BOXES_NAME

    def gt_boxes(self) -> dict[str, dict[int, np.ndarray]]:
        from vidllm_core.data.benchmarks.scannet import load_gt_boxes_file

        return load_gt_boxes_file(self.gt_boxes_path())


def load_prepared(path: str | os.PathLike) -> PreparedScanNet:
    """Open a prepared folder; anything else is one `DataError` line."""
    root = Path(path)
    index_path = root / INDEX_NAME
    if not index_path.is_file():
        raise DataError(f"{root}: not a prepared ScanNet folder (no {INDEX_NAME}; write one with "
                        "`vidllm prepare scannet`)")
    index = read_json(index_path, "prepared index")
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("scenes"), dict):
        raise DataError(f"{index_path}: not a {FORMAT} index")
    if index.get("version") != VERSION:
        raise DataError(f"{index_path}: format version {index.get('version')!r}, this vidllm reads {VERSION} "
                        "(re-run `vidllm prepare scannet`)")
    return PreparedScanNet(root, index)
