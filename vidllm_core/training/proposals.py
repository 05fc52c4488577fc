"""Proposal sets that Stage 2 trains the proposal scorer on (not in the paper, which scores Mask3D proposals at test
time; issue 12): each grounding item gets its scene's proposals in the clip's box frame, the target being the
proposal of highest IoU with the GT box (`losses.grounding.proposal_loss`).

`data.proposals` of a recipe: a folder of per-scene proposal files (`data/proposals.py` formats), or "synthetic":
every GT box of the scene jittered plus random distractor boxes, drawn anew per clip. Synthetic proposals are only
allowed on synthrooms scenes (a real benchmark must be trained on real proposals); a synthrooms scene without a
proposal file in the folder uses them too. Both cases are recorded in the run's notes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidllm_core.errors import ConfigError, DataError

__all__ = ["SYNTHETIC", "TrainProposals", "build_train_proposals", "is_synthrooms_scene", "synthetic_proposals"]

SYNTHETIC = "synthetic"
CAPTION_MIN_IOU = 0.5   # a Scan2Cap sample names its matched proposal from this IoU with the GT box on


def is_synthrooms_scene(scene_dir: str | Path) -> bool:
    """True for a scene folder written by `vidllm synth` (its scene.json names the generator)."""
    meta = Path(scene_dir) / "scene.json"
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and "generator" in doc and "format_version" in doc


def synthetic_proposals(gt: np.ndarray, rng: np.random.Generator, jitter: float = 0.1,
                        distractors: int = 8) -> np.ndarray:
    """Boxes [G + distractors, 6] in random order: every GT box [G, 6] with its centre moved by N(0, jitter * size)
    and its sizes scaled by exp(N(0, jitter)), plus random boxes inside the GT boxes' bounds."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 6)
    moved = gt[:, :3] + rng.normal(0.0, jitter, gt[:, :3].shape) * gt[:, 3:]
    sized = gt[:, 3:] * np.exp(rng.normal(0.0, jitter, gt[:, 3:].shape))
    lo = (gt[:, :3] - gt[:, 3:] / 2).min(0) if len(gt) else np.zeros(3)
    hi = (gt[:, :3] + gt[:, 3:] / 2).max(0) if len(gt) else np.ones(3)
    extra = np.c_[rng.uniform(lo, hi, (distractors, 3)), rng.uniform(0.15, 1.5, (distractors, 3))]
    out = np.concatenate([np.c_[moved, sized], extra])
    return out[rng.permutation(len(out))]


@dataclass
class TrainProposals:
    """Per-scene proposals for training. files: scene -> proposal boxes (scene frame) read once; synthetic: scenes
    drawn per clip from `gt_boxes` (scene -> {object id: box})."""

    files: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic: set[str] = field(default_factory=set)
    gt_boxes: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def for_clip(self, scene_id: str, frame: Any, box_sets: Sequence[Any], rng: np.random.Generator
                 ) -> list[torch.Tensor | None]:
        """One entry per language sample: its scene's proposals [P, 6] in the clip's box frame for grounding
        samples (`box_sets[i]` not None), None for the others."""
        if all(b is None for b in box_sets):
            return [None] * len(box_sets)
        props = self._scene_boxes(scene_id, box_sets, rng)
        mapped = torch.from_numpy(frame.boxes_from_scene(props)).float()
        return [None if b is None else mapped for b in box_sets]

    def _scene_boxes(self, scene_id: str, box_sets: Sequence[Any], rng: np.random.Generator) -> np.ndarray:
        """The scene's proposals [P, 6] (scene frame): its file's, or synthetic ones drawn now."""
        if scene_id not in self.synthetic:
            return self.files[scene_id]
        gt = list(self.gt_boxes.get(scene_id, {}).values())
        gt += [b for s in box_sets if s is not None for b in np.asarray(s, dtype=np.float64).reshape(-1, 6)]
        return synthetic_proposals(np.unique(np.asarray(gt).reshape(-1, 6), axis=0), rng)

    def caption_box(self, scene_id: str, gt_box: Any, rng: np.random.Generator) -> np.ndarray:
        """The box a Scan2Cap sample names in its prompt (scene frame): the scene's proposal of highest IoU with the
        object's GT box when that IoU reaches `CAPTION_MIN_IOU` (the box a test-time caption is counted for at
        m@0.5), else the GT box itself (docs/DESIGN.md 'Dense captioning')."""
        from vidllm_core.metrics.grounding import box3d_iou_matrix

        gt = np.asarray(gt_box, dtype=np.float64).reshape(1, 6)
        props = self._scene_boxes(scene_id, [gt], rng)
        iou = box3d_iou_matrix(gt, props)[0] if len(props) else np.zeros(0)
        return props[int(np.argmax(iou))] if len(iou) and iou.max() >= CAPTION_MIN_IOU else gt[0]


def build_train_proposals(spec: str, scene_dirs: Sequence[Path], gt_boxes: dict[str, dict[int, np.ndarray]] | None
                          ) -> tuple[TrainProposals, list[str]]:
    """The recipe's `data.proposals` for these scenes -> (TrainProposals, notes for the run record).

    Refused with one line: synthetic proposals for a scene that is not synthrooms, or without GT boxes; a
    non-synthrooms scene without a proposal file; a scene whose file holds no valid box."""
    from vidllm_core.data.proposals import read_proposals

    out = TrainProposals(gt_boxes=dict(gt_boxes or {}))
    notes: list[str] = []
    missing: list[Path] = []
    if spec == SYNTHETIC:
        missing = list(scene_dirs)
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise DataError(f"data.proposals folder not found: {folder}")
        dropped = 0
        for d in scene_dirs:
            if not ((folder / f"{d.name}.json").is_file() or (folder / f"{d.name}.npy").is_file()):
                missing.append(d)
                continue
            found = read_proposals(folder, d.name)
            if not len(found.boxes):
                raise DataError(f"{found.path}: no valid proposal box for training scene {d.name}")
            out.files[d.name], dropped = found.boxes, dropped + found.dropped
        if dropped:
            notes.append(f"data.proposals: dropped {dropped} box(es) with NaN / inf coordinates or a size <= 0")
    real = [d.name for d in missing if not is_synthrooms_scene(d)]
    if real:
        what = ("synthetic proposals are only for synthrooms scenes" if spec == SYNTHETIC else
                f"no proposal file in {spec}")
        raise ConfigError(f"data.proposals: {what}: {len(real)} scene(s), e.g. {real[0]}")
    if missing:
        if gt_boxes is None:
            raise ConfigError("data.proposals: synthetic proposals need GT boxes (data.annotations.gt_boxes)")
        out.synthetic = {d.name for d in missing}
        notes.append(f"data.proposals: {len(missing)} synthrooms scene(s) train the proposal scorer on synthetic "
                     "proposals (GT boxes jittered + random distractors, drawn per clip)")
    return out, notes
