"""Evaluation context: the side inputs a scorer may need (scenes, GT boxes, proposals, training answers), loaded
lazily and cached (GT boxes follow FORMATS.md sec. 3: AABB of the aligned instance mesh, centre + size)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError


@dataclass
class EvalContext:
    """Inputs beside the annotations; `notes` collects one-line remarks the CLI shows and stores in metrics.json."""

    scenes_dir: Path | None = None
    gt_boxes_path: Path | None = None        # JSON {scene: {object_id: [cx,cy,cz,dx,dy,dz]}}
    proposals_dir: Path | None = None        # <scene>.npy / <scene>.json, (K, 6) boxes
    train_annotations: list[Path] = field(default_factory=list)
    label_map: Path | None = None            # scannetv2-labels.combined.tsv (raw_category -> nyu40id)
    caption_pipeline: str | None = None
    meteor_backend: str = "python"          # python (pure Python, no Java) | java (pycocoevalcap's METEOR 1.5 jar)
    depth_align: str = "none"               # none | median | lstsq (METRICS.md sec. 4)
    seed: int = 0
    all_records: list = field(default_factory=list)   # the whole annotation file (before --limit / --shard)
    notes: list[str] = field(default_factory=list)
    progress: Callable[[str, int], Callable[[], None]] | None = None   # (label, total) -> advance()
    # model-driven runs (`--model`): where the hook writes, how it runs, and the model loaded once per run
    predictions_dir: Path | None = None
    device: str = "cpu"
    num_frames: int | None = None            # frames per scene; None = the model's config.input.num_frames
    model_variant: str | None = None         # a model baseline (e.g. "no-alignment"), None = the model as is
    _models: dict[str, Any] = field(default_factory=dict)
    _gt: dict[str, dict[int, np.ndarray]] | None = None
    _gt_scene_cache: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def ticker(self, label: str, total: int) -> Callable[[], None]:
        return self.progress(label, total) if self.progress is not None else (lambda: None)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """`build()` once per context (a loaded model, a run guard), then the same object."""
        if key not in self._models:
            self._models[key] = build()
        return self._models[key]

    # --- GT boxes ---------------------------------------------------------------------------------------------
    def has_gt_boxes(self) -> bool:
        return self.gt_boxes_path is not None or self.scenes_dir is not None

    def scene_boxes(self, scene_id: str) -> dict[int, np.ndarray]:
        """All GT boxes of a scene: from `--gt-boxes FILE`, else from the raw ScanNet scan in `--scenes DIR`."""
        from vidllm_core.data.benchmarks.scannet import boxes_from_scannet_scan, load_gt_boxes_file
        from vidllm_core.data.benchmarks._common import scene_path

        if self.gt_boxes_path is not None:
            if self._gt is None:
                self._gt = load_gt_boxes_file(self.gt_boxes_path)
            if scene_id not in self._gt:
                raise DataError(f"{self.gt_boxes_path}: no GT boxes for scene {scene_id}")
            return self._gt[scene_id]
        if self.scenes_dir is None:
            raise DataError("this task needs GT boxes: give --gt-boxes FILE or --scenes DIR with raw ScanNet scans")
        if scene_id not in self._gt_scene_cache:
            self._gt_scene_cache[scene_id] = boxes_from_scannet_scan(scene_path(self.scenes_dir, scene_id), scene_id)
        return self._gt_scene_cache[scene_id]

    def gt_box(self, scene_id: str, object_id: int) -> np.ndarray:
        boxes = self.scene_boxes(scene_id)
        if object_id not in boxes:
            raise DataError(f"no GT box for object {object_id} of scene {scene_id}")
        return boxes[object_id]

    def proposals(self, scene_id: str) -> np.ndarray:
        """Valid proposal boxes (K, 6) of a scene (`data.proposals.read_proposals`); dropped rows and empty
        scenes are counted in `notes`."""
        from vidllm_core.data.proposals import ProposalLog, read_proposals

        if self.proposals_dir is None:
            raise DataError("this baseline needs proposal boxes: give --proposals DIR (<scene>.json or <scene>.npy)")
        found = read_proposals(self.proposals_dir, scene_id)
        self.cached("proposal-log", lambda: ProposalLog(self.notes)).record(found)
        return found.boxes

    def nyu40_of(self) -> dict[str, int] | None:
        """raw_category -> nyu40id from `--label-map` (columns 1 and 4 of scannetv2-labels.combined.tsv)."""
        if self.label_map is None:
            return None
        import csv

        out: dict[str, int] = {}
        with open(self.label_map, newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh, delimiter="\t")
            header = next(rows, None)
            if not header or len(header) < 5:
                raise DataError(f"{self.label_map}: not scannetv2-labels.combined.tsv (needs >= 5 tab-separated columns)")
            for row in rows:
                if len(row) >= 5 and row[4].strip().isdigit():
                    out[row[1]] = int(row[4])
        return out


def metric(name: str) -> Any:
    """A function from `vidllm_core.metrics` (lazily imported so loaders work without the metrics package)."""
    import importlib

    pkg = importlib.import_module("vidllm_core.metrics")
    fn = getattr(pkg, name, None)
    if fn is None:  # the package may not re-export everything yet
        for sub in ("qa", "caption", "grounding", "depth", "pose", "reconstruction", "geometry"):
            try:
                mod = importlib.import_module(f"vidllm_core.metrics.{sub}")
            except ImportError:
                continue
            fn = getattr(mod, name, None)
            if fn is not None:
                break
    if fn is None:
        raise NotImplementedError(f"metric {name!r} is not available in vidllm_core.metrics yet")
    return fn
