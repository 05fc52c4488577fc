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
    prepared_dir: Path | None = None         # `vidllm prepare scannet` output: GT boxes and axis alignments
    allow_missing_alignment: bool = False    # identity for a scene without axis alignment (noted in metrics.json)
    answer_batch_size: int | None = None     # QA questions of a scene answered together; None = the library default
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

    # --- prepared ScanNet folder and axis alignment --------------------------------------------------------
    def prepared(self) -> Any:
        """The `PreparedScanNet` of `--prepared`, read once (None without it)."""
        if self.prepared_dir is None:
            return None
        from vidllm_core.data.prepared import load_prepared

        return self.cached("prepared", lambda: load_prepared(self.prepared_dir))

    def open_scene(self, scenes_dir: Path, scene_id: str) -> Any:
        """A posed-images scene (lenient) whose reconstruction will be placed in the GT-box frame, with its axis
        alignment: the prepared folder's, else its `<scene>.txt`; none is an error unless `allow_missing_alignment`
        (identity, noted in metrics.json)."""
        from vidllm_core.data.benchmarks import Problems, open_scene

        prepared = self.prepared()
        align = None
        if prepared is not None:
            align = prepared.axis_align(scene_id)
            if prepared.alignment(scene_id) != "file":
                self._note_identity(scene_id, f"prepared with --allow-missing-alignment in {self.prepared_dir}")
        scene = open_scene(scenes_dir, scene_id, Problems(strict=False), axis_align=align,
                           allow_missing_alignment=self.allow_missing_alignment)
        if scene.axis_align is None:
            raise DataError(f"scene {scene_id}: no axis alignment ({scene.root / (scene_id + '.txt')} not found; "
                            f"ScanNet keeps it in scans/{scene_id}/{scene_id}.txt): give --prepared DIR (vidllm "
                            "prepare scannet), or --allow-missing-alignment to use identity")
        if not scene.has_axis_align and align is None:
            self._note_identity(scene_id, "--allow-missing-alignment")
        return scene

    def _note_identity(self, scene_id: str, why: str) -> None:
        """One note per run naming how many scenes used identity (the count grows as scenes are opened)."""
        names = self._models.setdefault("identity-alignment", [])
        if scene_id not in names:
            names.append(scene_id)
        self.notes[:] = [n for n in self.notes if not n.startswith("axis alignment: identity")]
        self.note(f"axis alignment: identity used for {len(names)} scene(s) without one (e.g. {names[0]}; {why})")

    # --- GT boxes ---------------------------------------------------------------------------------------------
    def has_gt_boxes(self) -> bool:
        return self.gt_boxes_path is not None or self.scenes_dir is not None or self.prepared_dir is not None

    def scene_boxes(self, scene_id: str) -> dict[int, np.ndarray]:
        """All GT boxes of a scene: from `--gt-boxes FILE`, else the `--prepared` folder, else the raw ScanNet scan
        in `--scenes DIR` (a missing axis alignment refused unless allowed)."""
        from vidllm_core.data.benchmarks._common import scene_path
        from vidllm_core.data.benchmarks.scannet import load_gt_boxes_file
        from vidllm_core.data.benchmarks.scannet_scan import scan_objects

        if self.gt_boxes_path is None and self.prepared() is not None:
            if scene_id not in self._gt_scene_cache:
                self._gt_scene_cache[scene_id] = self.prepared().boxes(scene_id)
                if self.prepared().alignment(scene_id) != "file":
                    self._note_identity(scene_id, f"prepared with --allow-missing-alignment in {self.prepared_dir}")
            return self._gt_scene_cache[scene_id]
        if self.gt_boxes_path is not None:
            if self._gt is None:
                self._gt = load_gt_boxes_file(self.gt_boxes_path)
            if scene_id not in self._gt:
                raise DataError(f"{self.gt_boxes_path}: no GT boxes for scene {scene_id}")
            return self._gt[scene_id]
        if self.scenes_dir is None:
            raise DataError("this task needs GT boxes: give --prepared DIR (vidllm prepare scannet), --gt-boxes FILE "
                            "or --scenes DIR with raw ScanNet scans")
        if scene_id not in self._gt_scene_cache:
            scan = scan_objects(scene_path(self.scenes_dir, scene_id), scene_id,
                                allow_missing_alignment=self.allow_missing_alignment)
            if scan.alignment != "file":
                self._note_identity(scene_id, "--allow-missing-alignment")
            self._gt_scene_cache[scene_id] = scan.boxes()
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
