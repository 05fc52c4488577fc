"""Monocular / video depth metrics: delta_i, AbsRel, SqRel, RMSE, RMSE_log, log10, SILog with optional alignment.

Reference: METRICS.md sec. 4 (BTS `bts_eval.py::compute_errors`, monodepth2 `evaluate_depth.py` median scaling,
Marigold `util/alignment.py::align_depth_least_square`); paper sec. 4 depth evaluation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidllm_core.errors import DataError

__all__ = ["DEPTH_KEYS", "align_depth", "depth_errors", "depth_metrics"]

Align = Literal["none", "median", "lstsq"]
DEPTH_KEYS: tuple[str, ...] = ("delta1", "delta2", "delta3", "AbsRel", "SqRel", "RMSE", "RMSE_log", "log10", "SILog")


def depth_errors(pred: NDArray[np.float64], gt: NDArray[np.float64]) -> dict[str, float]:
    """Errors over already-masked, strictly positive 1-D arrays (BTS `compute_errors` definitions)."""
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    log_diff = np.log(pred) - np.log(gt)
    return {
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "AbsRel": float(np.mean(np.abs(diff) / gt)),
        "SqRel": float(np.mean(diff**2 / gt)),
        "RMSE": float(np.sqrt(np.mean(diff**2))),
        "RMSE_log": float(np.sqrt(np.mean(log_diff**2))),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
        "SILog": float(100.0 * np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0))),
    }


def align_depth(pred: NDArray[np.float64], gt: NDArray[np.float64], align: Align) -> NDArray[np.float64]:
    """Align masked predictions to masked GT: "median" = pred * median(gt)/median(pred) (monodepth2);
    "lstsq" = s*pred + t with [s, t] = least squares of [pred, 1] -> gt (Marigold, depth space); "none"."""
    if align == "none":
        return pred
    if align == "median":
        med = np.median(pred)
        if not med > 0:
            raise DataError("median alignment needs predictions with a positive median on the valid pixels")
        return pred * (np.median(gt) / med)
    if align == "lstsq":
        a = np.stack([pred, np.ones_like(pred)], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, gt, rcond=None)
        return pred * s + t
    raise DataError(f"unknown depth alignment {align!r}; use 'none', 'median' or 'lstsq'")


def depth_metrics(
    pred: ArrayLike,
    gt: ArrayLike,
    valid: ArrayLike | None = None,
    align: Align = "none",
    min_depth: float = 1e-3,
    max_depth: float | None = None,
) -> dict:
    """Depth metrics per image, then averaged over images (BTS / monodepth2 / Marigold protocol).

    pred, gt: (H, W) or (N, H, W) depths in the same unit (metres); valid: optional bool mask of the same shape
    (e.g. an Eigen crop), intersected with min_depth < gt (< max_depth) and finite gt. Alignment ("none", "median",
    "lstsq") is fitted per image on the valid pixels; the prediction is then clipped to [min_depth, max_depth] as
    BTS / monodepth2 / Marigold do. Returns {"delta1", "delta2", "delta3", "AbsRel", "SqRel", "RMSE", "RMSE_log",
    "log10", "SILog", "n_images", "n_pixels"}; images without a valid pixel are skipped (error if all are).
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim not in (2, 3):
        raise DataError(f"pred {p.shape} and gt {g.shape} must be equal (H, W) or (N, H, W) arrays")
    mask = np.isfinite(g) & (g > min_depth)
    if max_depth is not None:
        mask &= g < max_depth
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != g.shape:
            raise DataError(f"valid mask {v.shape} does not match depth {g.shape}")
        mask &= v
    if p.ndim == 2:
        p, g, mask = p[None], g[None], mask[None]
    upper = np.inf if max_depth is None else max_depth
    rows: list[dict[str, float]] = []
    n_pixels = 0
    for pi, gi, mi in zip(p, g, mask):
        if not mi.any():
            continue
        pv = np.nan_to_num(pi[mi], nan=min_depth, posinf=upper, neginf=min_depth)
        pv = np.clip(align_depth(pv, gi[mi], align), min_depth, upper)
        rows.append(depth_errors(pv, gi[mi]))
        n_pixels += int(mi.sum())
    if not rows:
        raise DataError("no valid ground-truth depth pixel in any image")
    out: dict = {k: float(np.mean([r[k] for r in rows])) for k in DEPTH_KEYS}
    out["n_images"] = len(rows)
    out["n_pixels"] = n_pixels
    return out
