"""3D visual grounding metrics: axis-aligned box IoU, ScanRefer Acc@k, Multi3DRefer F1@k, Nr3D/Sr3D accuracy.

Reference: METRICS.md sec. 3 (ScanRefer `utils/box_util.py::box3d_iou` + `lib/eval_helper.py`; M3DRef-CLIP
`util/utils.py::get_batch_aabb_pair_ious` + `evaluation/multi3drefer_evaluator.py`; Video-3D-LLM `box_utils.py` and
`eval_multi3drefer.py`; ReferIt3D easy/hard/view-dependent splits as labelled by M3DRef-CLIP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from vidllm_core.errors import DataError

__all__ = [
    "MULTI3DREFER_EVAL_TYPES",
    "box3d_iou",
    "box3d_iou_matrix",
    "center_size_to_minmax",
    "multi3drefer_f1",
    "multi3drefer_query_f1",
    "referit3d_accuracy",
    "scanrefer_accuracy",
]

IoUVariant = Literal["scanrefer", "m3drefclip", "exact"]
BoxFormat = Literal["center_size", "minmax"]

#: Multi3DRefer query types: zero / single / multiple target(s), with / without distractors of the same class.
MULTI3DREFER_EVAL_TYPES: tuple[str, ...] = ("zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt")
_F32_EPS = np.float32(np.finfo(np.float32).eps)


def center_size_to_minmax(boxes: ArrayLike) -> NDArray[np.float64]:
    """[..., (cx, cy, cz, sx, sy, sz)] with FULL sizes -> [..., (xmin, ymin, zmin, xmax, ymax, zmax)] in float64.

    Computed as ScanRefer's `construct_bbox_corners` does (centre + (-size/2), centre + size/2)."""
    b = np.asarray(boxes, dtype=np.float64)
    half = b[..., 3:6] / 2
    return np.concatenate([b[..., 0:3] + -half, b[..., 0:3] + half], axis=-1)


def _as_boxes(boxes: ArrayLike, name: str) -> NDArray[np.float64]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return b.reshape(*b.shape[:-1], 6) if b.ndim >= 1 and b.shape[-1] == 6 else np.zeros((0, 6))
    if b.shape[-1] != 6:
        raise DataError(f"{name}: boxes must have 6 numbers each, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise DataError(f"{name}: boxes contain NaN or inf")
    return b


def _to_minmax(boxes: ArrayLike, box_format: BoxFormat, name: str) -> NDArray[np.float64]:
    b = _as_boxes(boxes, name)
    if box_format == "center_size":
        if (b[..., 3:6] < 0).any():
            raise DataError(f"{name}: box sizes must be >= 0")
        return center_size_to_minmax(b)
    if box_format == "minmax":
        if (b[..., 3:6] < b[..., 0:3]).any():
            raise DataError(f"{name}: minmax boxes need max >= min on every axis")
        return b
    raise DataError(f"unknown box format {box_format!r}; use 'center_size' or 'minmax'")


def _iou_minmax(a: NDArray, b: NDArray, variant: IoUVariant) -> NDArray:
    """Broadcast IoU of min/max boxes a[..., 6], b[..., 6]."""
    if variant == "m3drefclip":  # torch float32 arithmetic, eps = finfo(float32).eps
        a, b = a.astype(np.float32), b.astype(np.float32)
        lo = np.maximum(a[..., 0:3], b[..., 0:3])
        hi = np.minimum(a[..., 3:6], b[..., 3:6])
        ext = np.maximum(hi - lo, np.float32(0))
        inter = ext[..., 0] * ext[..., 1] * ext[..., 2]
        va = (a[..., 3] - a[..., 0]) * (a[..., 4] - a[..., 1]) * (a[..., 5] - a[..., 2])
        vb = (b[..., 3] - b[..., 0]) * (b[..., 4] - b[..., 1]) * (b[..., 5] - b[..., 2])
        return inter / (va + vb - inter + _F32_EPS)
    if variant not in ("scanrefer", "exact"):
        raise DataError(f"unknown IoU variant {variant!r}; use 'scanrefer', 'm3drefclip' or 'exact'")
    lo = np.maximum(a[..., 0:3], b[..., 0:3])
    hi = np.minimum(a[..., 3:6], b[..., 3:6])
    ext = np.maximum(hi - lo, 0.0)
    inter = ext[..., 0] * ext[..., 1] * ext[..., 2]
    va = (a[..., 3] - a[..., 0]) * (a[..., 4] - a[..., 1]) * (a[..., 5] - a[..., 2])
    vb = (b[..., 3] - b[..., 0]) * (b[..., 4] - b[..., 1]) * (b[..., 5] - b[..., 2])
    if variant == "scanrefer":
        return inter / (va + vb - inter + 1e-8)
    union = va + vb - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box3d_iou(
    a: ArrayLike, b: ArrayLike, variant: IoUVariant = "scanrefer", box_format: BoxFormat = "center_size"
) -> NDArray[np.float64] | float:
    """Axis-aligned 3D IoU of boxes a[..., 6] and b[..., 6] (numpy broadcasting; scalars for single boxes).

    box_format: "center_size" = [cx, cy, cz, dx, dy, dz] with full sizes (default), or "minmax".
    variant: "scanrefer" (default; ScanRefer / Video-3D-LLM: float64, eps 1e-8 in the denominator),
    "m3drefclip" (float32 arithmetic, eps = float32 machine eps; the official Multi3DRefer evaluator), or
    "exact" (float64, no eps; IoU 0 for an empty union). Because of the eps, an IoU of exactly 0.5 counts as a
    miss under "scanrefer" (see docs/metrics.md).
    """
    iou = _iou_minmax(_to_minmax(a, box_format, "a"), _to_minmax(b, box_format, "b"), variant)
    out = np.asarray(iou, dtype=np.float64)
    return float(out) if out.ndim == 0 else out


def box3d_iou_matrix(
    pred: ArrayLike, gt: ArrayLike, variant: IoUVariant = "scanrefer", box_format: BoxFormat = "center_size"
) -> NDArray[np.float64]:
    """(P, G) IoU matrix between P predicted and G ground-truth boxes."""
    p = _to_minmax(np.asarray(pred, dtype=np.float64).reshape(-1, 6), box_format, "pred")
    g = _to_minmax(np.asarray(gt, dtype=np.float64).reshape(-1, 6), box_format, "gt")
    return np.asarray(_iou_minmax(p[:, None, :], g[None, :, :], variant), dtype=np.float64).reshape(len(p), len(g))


def scanrefer_accuracy(
    pred_boxes: ArrayLike,
    gt_boxes: ArrayLike,
    unique_mask: ArrayLike | None = None,
    variant: IoUVariant = "scanrefer",
    box_format: BoxFormat = "center_size",
    thresholds: Sequence[float] = (0.25, 0.5),
) -> dict:
    """ScanRefer Acc@k = mean(IoU >= k) over queries, overall and for the "unique" / "multiple" subsets.

    pred_boxes, gt_boxes: (N, 6), one predicted box per query. unique_mask: (N,) bool, True where the target is
    the only object of its class in the scene. Returns {"Acc@0.25", "Acc@0.5", "Acc@0.25/unique", ...,
    "n", "n/unique", "n/multiple", "iou": (N,) array}. A subset with no query gets NaN.
    """
    pred = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 6)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 6)
    if len(pred) != len(gt):
        raise DataError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    if len(gt) == 0:
        raise DataError("no queries to score")
    iou = np.asarray(box3d_iou(pred, gt, variant=variant, box_format=box_format), dtype=np.float64).reshape(-1)
    subsets: dict[str, NDArray[np.bool_]] = {"": np.ones(len(gt), dtype=bool)}
    if unique_mask is not None:
        unique = np.asarray(unique_mask, dtype=bool).reshape(-1)
        if len(unique) != len(gt):
            raise DataError(f"unique_mask has {len(unique)} entries for {len(gt)} queries")
        subsets["/unique"], subsets["/multiple"] = unique, ~unique
    out: dict = {}
    for suffix, mask in subsets.items():
        for k in thresholds:
            out[f"Acc@{k:g}{suffix}"] = float(np.mean(iou[mask] >= k)) if mask.any() else float("nan")
        out[f"n{suffix}"] = int(mask.sum())
    out["iou"] = iou
    return out


def multi3drefer_query_f1(
    pred: ArrayLike,
    gt: ArrayLike,
    eval_type: str | None = None,
    thresholds: Sequence[float] = (0.25, 0.5),
    variant: Literal["official", "video3dllm"] = "official",
    box_format: BoxFormat = "center_size",
) -> dict[float, float]:
    """F1@k of one Multi3DRefer query: {k: F1}.

    official (M3DRef-CLIP): zero-target types (zt_*) score 1 iff no box is predicted; otherwise a square
    zero-padded float32 IoU matrix (float32 IoU) is matched with Hungarian maximising the SUM of IoU, TP@k counts
    matched pairs with IoU >= k, F1 = 2 TP / (P + G). video3dllm: eval_type ignored (both empty -> 1, one empty -> 0),
    float64 IoU with eps 1e-8 rounded into the float32 matrix.
    """
    p = _to_minmax(np.asarray(pred, dtype=np.float64).reshape(-1, 6), box_format, "pred")
    g = _to_minmax(np.asarray(gt, dtype=np.float64).reshape(-1, 6), box_format, "gt")
    n_pred, n_gt = len(p), len(g)
    if variant == "official":
        if eval_type is None or eval_type not in MULTI3DREFER_EVAL_TYPES:
            raise DataError(f"unknown Multi3DRefer eval_type {eval_type!r}; expected one of "
                            f"{', '.join(MULTI3DREFER_EVAL_TYPES)}")
        if eval_type.startswith("zt"):
            return {k: float(n_pred == 0) for k in thresholds}
        if n_pred == 0:
            return {k: 0.0 for k in thresholds}
        ious = _iou_minmax(p[:, None, :], g[None, :, :], "m3drefclip")
    elif variant == "video3dllm":
        if n_pred == 0 or n_gt == 0:
            return {k: float(n_pred == 0 and n_gt == 0) for k in thresholds}
        ious = _iou_minmax(p[:, None, :], g[None, :, :], "scanrefer")
    else:
        raise DataError(f"unknown Multi3DRefer variant {variant!r}; use 'official' or 'video3dllm'")
    size = max(n_pred, n_gt)
    matrix = np.zeros((size, size), dtype=np.float32)
    matrix[:n_pred, :n_gt] = ious
    rows, cols = linear_sum_assignment(matrix * np.float32(-1))
    matched = matrix[rows[:n_pred], cols[:n_pred]]
    return {k: 2.0 * int(np.sum(matched >= k)) / (n_pred + n_gt) for k in thresholds}


def multi3drefer_f1(
    pred_boxes: Sequence[ArrayLike],
    gt_boxes: Sequence[ArrayLike],
    eval_types: Sequence[str],
    thresholds: Sequence[float] = (0.25, 0.5),
    variant: Literal["official", "video3dllm"] = "official",
    box_format: BoxFormat = "center_size",
) -> dict:
    """Multi3DRefer F1@k: plain mean of per-query F1, overall and per eval type (zt_wo_d, zt_w_d, st_wo_d,
    st_w_d, mt). pred_boxes[i]: (P_i, 6), gt_boxes[i]: (G_i, 6) (either may be empty).

    Returns {"F1@0.25", "F1@0.5", "F1@0.25/zt_wo_d", ..., "n", "n/<type>", "per_query": [{k: F1}]}; a type with
    no query is left out. The official evaluator stores the means in float32; ours are float64 (diff < 1e-7).
    """
    if not (len(pred_boxes) == len(gt_boxes) == len(eval_types)):
        raise DataError(f"pred_boxes ({len(pred_boxes)}), gt_boxes ({len(gt_boxes)}) and eval_types "
                        f"({len(eval_types)}) must have the same length")
    if len(gt_boxes) == 0:
        raise DataError("no queries to score")
    per_query = [
        multi3drefer_query_f1(p, g, t, thresholds, variant, box_format)
        for p, g, t in zip(pred_boxes, gt_boxes, eval_types)
    ]
    types = np.asarray([str(t) for t in eval_types])
    out: dict = {}
    for k in thresholds:
        scores = np.asarray([q[k] for q in per_query])
        out[f"F1@{k:g}"] = float(np.mean(scores))
        for t in MULTI3DREFER_EVAL_TYPES:
            mask = types == t
            if mask.any():
                out[f"F1@{k:g}/{t}"] = float(np.mean(scores[mask]))
    out["n"] = len(per_query)
    for t in MULTI3DREFER_EVAL_TYPES:
        if (types == t).any():
            out[f"n/{t}"] = int((types == t).sum())
    out["per_query"] = per_query
    return out


def referit3d_accuracy(correct: ArrayLike, hard: ArrayLike, view_dep: ArrayLike) -> dict:
    """Nr3D / Sr3D accuracy (ReferIt3D): mean of `correct` overall and on the easy/hard and view-dependent /
    view-independent splits. hard: True when the scene has more than 2 distractors of the target's class;
    view_dep: True when the utterance uses view-dependent words. Returns {"overall", "easy", "hard",
    "view_dep", "view_indep", "n"}; an empty split gets NaN."""
    c = np.asarray(correct, dtype=bool).reshape(-1)
    h = np.asarray(hard, dtype=bool).reshape(-1)
    v = np.asarray(view_dep, dtype=bool).reshape(-1)
    if not (len(c) == len(h) == len(v)):
        raise DataError(f"correct ({len(c)}), hard ({len(h)}) and view_dep ({len(v)}) must have the same length")
    if len(c) == 0:
        raise DataError("no utterances to score")

    def acc(mask: NDArray[np.bool_]) -> float:
        return float(c[mask].mean()) if mask.any() else float("nan")

    return {"overall": acc(np.ones_like(c)), "easy": acc(~h), "hard": acc(h), "view_dep": acc(v),
            "view_indep": acc(~v), "n": int(len(c))}
