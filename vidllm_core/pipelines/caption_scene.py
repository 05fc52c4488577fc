"""Dense captioning of one video's scene (Vid-LLM Sec. 4, Tab. 2: Scan2Cap's setting, one caption per object
proposal): the box file reader and the per-box loop behind `vidllm caption --box / --point / --proposals`.

Locations are in the box frame (`geometry.box_frame`, the frame `vidllm ground` answers in), or in the
gravity-aligned frame of `vidllm ground --gravity-align` when a box file says so (mapped into the box frame
exactly: a quarter turn about z and a shift)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import DataError

__all__ = ["BoxFile", "CaptionedScene", "caption_scene", "read_box_file"]

GRAVITY_FRAME = "gravity_aligned"   # the frame name `vidllm ground --gravity-align` writes (pipelines.ground_scene)


@dataclass(frozen=True)
class BoxFile:
    """boxes [K, 6] centre + size, finite, sizes > 0; index [K]: their rows in the file; dropped: rows removed
    (NaN / inf, size <= 0); gravity_aligned: the file states the `vidllm ground --gravity-align` frame."""

    path: Path
    boxes: np.ndarray
    index: np.ndarray
    dropped: int
    gravity_aligned: bool


def read_box_file(path: str | Path) -> BoxFile:
    """A JSON list of boxes, of {"box": [...]} records, or {"boxes": [...], "frame": {...}} (`vidllm ground -o`).

    Raises DataError (one line): missing file, not JSON / not UTF-8, wrong shape, no box at all, no valid box."""
    from vidllm_core.data.proposals import validate_boxes

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"proposals file not found: '{path}'") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"proposals file '{path}' is not JSON: {exc}") from None
    gravity = False
    if isinstance(data, dict):
        frame = data.get("frame")
        gravity = isinstance(frame, dict) and str(frame.get("name", "")).startswith(GRAVITY_FRAME)
        data = data.get("boxes", [])
    if isinstance(data, list):
        data = [b["box"] if isinstance(b, dict) and "box" in b else b for b in data]
    if not isinstance(data, list) or not data:
        raise DataError(f"proposals file '{path}' holds no box (an empty list)")
    boxes, _, dropped = validate_boxes(data, str(path))   # shape checked here
    if not len(boxes):
        raise DataError(f"proposals file '{path}' holds no valid box: all {dropped} have NaN / inf coordinates or a "
                        "size <= 0")
    raw = np.asarray(data, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        index = np.flatnonzero(np.isfinite(raw).all(1) & (raw[:, 3:] > 0).all(1))
    return BoxFile(path, boxes, index, dropped, gravity)


@dataclass
class CaptionedScene:
    """rows: {"index", "box" (box frame), "caption"} per captioned box, in file order; skipped: index -> why a box
    was not captioned (outside the reconstruction)."""

    frame: Any
    rows: list[dict] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def caption_scene(model: Any, enc: Any, boxes: np.ndarray, *, index: Any = None, gravity_aligned: bool = False,
                  frame: Any = None, **generate: Any) -> CaptionedScene:
    """One Scan2Cap caption per box [K, 6] (box frame; the gravity-aligned frame when `gravity_aligned`), numbered
    by `index` (default 0..K-1). A box outside the reconstruction is skipped and named in `skipped` (never the
    whole run); `generate` passes max_new_tokens / temperature / seed to `pipelines.language.caption`."""
    from vidllm_core.geometry.box_frame import estimate_box_frame
    from vidllm_core.pipelines.language import caption

    frame = frame if frame is not None else estimate_box_frame(enc.geometry)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    if gravity_aligned:
        boxes = frame.boxes_from_scene(boxes)
    out = CaptionedScene(frame)
    for i, b in zip(range(len(boxes)) if index is None else (int(i) for i in index), boxes):
        try:
            text = caption(model, enc, box=[float(v) for v in b], frame=frame, **generate).answer
        except DataError as exc:
            out.skipped[i] = str(exc)
            continue
        out.rows.append({"index": i, "box": [round(float(v), 4) for v in b], "caption": text})
    return out
