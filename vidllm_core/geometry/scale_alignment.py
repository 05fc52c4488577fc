"""Real-scale alignment: paper Sec. 3.2 "Real-Scale Alignment" (weighted least-squares scale, median of 16 frames).

Per frame, the scale ``s`` that maps the relative depth onto the metric depth minimises
``sum_i w_i (s * d_rel_i - d_met_i)^2``, i.e. ``s = sum(w d_rel d_met) / sum(w d_rel^2)``. By default the
estimate is made robust: an iteratively reweighted M-estimate of ``log s`` (Tukey biweight on log-ratio
residuals, scale by MAD, started from the median log-ratio) decides each pixel's inlier weight, and the closed
form above is evaluated with ``w`` times those weights, so gross outliers in either depth map do not bias it. The
scene scale is the median of the per-frame scales over (up to) 16 frames drawn with a seeded generator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidllm_core.errors import DataError

TUKEY_C: float = 4.685  # 95% efficiency under Gaussian noise
MAD_TO_SIGMA: float = 1.4826


def _check_maps(rel_depth: Tensor, metric_depth: Tensor, weights: Tensor | None, valid: Tensor | None) -> None:
    if rel_depth.ndim != 3 or rel_depth.shape != metric_depth.shape:
        raise ValueError(
            f"expected relative and metric depth [S, H, W] of one shape, got {tuple(rel_depth.shape)} "
            f"and {tuple(metric_depth.shape)}"
        )
    for name, t in (("weights", weights), ("valid", valid)):
        if t is not None and t.shape != rel_depth.shape:
            raise ValueError(f"{name} must have shape {tuple(rel_depth.shape)}, got {tuple(t.shape)}")


def per_frame_scale(
    rel_depth: Tensor,
    metric_depth: Tensor,
    weights: Tensor | None = None,
    valid: Tensor | None = None,
    robust: bool = True,
    iterations: int = 10,
) -> Tensor:
    """Weighted least-squares scale per frame, ``metric ~= s * relative``.

    Args:
        rel_depth: [S, H, W] relative depth (e.g. the DPT head's).
        metric_depth: [S, H, W] metric depth in metres (the Metric Depth Model's).
        weights: [S, H, W] non-negative confidence weights, or None for uniform weights.
        valid: [S, H, W] boolean mask of pixels to use, or None. Pixels with a non-finite or non-positive depth
            in either map, or a non-finite / non-positive weight, are always left out.
        robust: down-weight outliers first: an IRLS M-estimate of ``log s`` (Tukey biweight on the residuals
            ``log(d_met / d_rel) - log s``, scale from their MAD, started at the median log-ratio), then the
            closed form with ``w`` times the final Tukey weights. ``False`` gives the plain closed form.
        iterations: IRLS iterations (ignored when ``robust`` is False).

    Returns:
        [S] scales (float32 on the input's device); NaN for a frame without any usable pixel.
    """
    _check_maps(rel_depth, metric_depth, weights, valid)
    rel = rel_depth.detach().to(torch.float64).flatten(1)
    met = metric_depth.detach().to(torch.float64).flatten(1)
    w = torch.ones_like(rel) if weights is None else weights.detach().to(torch.float64).flatten(1)
    mask = torch.isfinite(rel) & torch.isfinite(met) & torch.isfinite(w) & (rel > 0) & (met > 0) & (w > 0)
    if valid is not None:
        mask &= valid.detach().to(torch.bool).flatten(1)
    w = torch.where(mask, w, torch.zeros_like(w))
    rel = torch.where(mask, rel, torch.ones_like(rel))
    met = torch.where(mask, met, torch.ones_like(met))

    def closed_form(wt: Tensor) -> Tensor:
        return (wt * rel * met).sum(1) / (wt * rel * rel).sum(1)

    if not robust:
        scale = closed_form(w)
    else:
        log_ratio = torch.log(met) - torch.log(rel)
        nan = torch.full_like(log_ratio, float("nan"))
        log_scale = torch.nanmedian(torch.where(mask, log_ratio, nan), dim=1).values

        def tukey_weights(center: Tensor) -> Tensor:
            resid = log_ratio - center[:, None]
            mad = torch.nanmedian(torch.where(mask, resid.abs(), nan), dim=1).values
            u = resid / (TUKEY_C * (MAD_TO_SIGMA * mad).clamp_min(1e-12)[:, None])
            return torch.where(u.abs() < 1, (1 - u * u) ** 2, torch.zeros_like(u))

        # M-estimate of the log scale (location of the log-ratios: no leverage from large depths) ...
        for _ in range(iterations):
            wt = w * tukey_weights(log_scale)
            log_scale = (wt * log_ratio).sum(1) / wt.sum(1)
        # ... then the weighted least-squares closed form on the pixels it keeps.
        scale = closed_form(w * tukey_weights(log_scale))
    scale = torch.where(mask.any(1), scale, torch.full_like(scale, float("nan")))
    return scale.to(torch.float32)


def sample_frames(
    num_total: int, num_frames: int = 16, generator: torch.Generator | None = None, seed: int = 0
) -> Tensor:
    """Indices of the frames used for the scene scale: all when ``num_total <= num_frames``, otherwise
    ``num_frames`` drawn without replacement by ``generator`` (or a CPU generator seeded with ``seed``), sorted.

    Returns:
        [min(num_total, num_frames)] int64 indices on the CPU.
    """
    if num_total < 1:
        raise DataError("scale alignment needs at least one frame")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if num_total <= num_frames:
        return torch.arange(num_total)
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_total, generator=generator)[:num_frames].sort().values


def scene_scale(
    rel_depth: Tensor,
    metric_depth: Tensor,
    weights: Tensor | None = None,
    valid: Tensor | None = None,
    num_frames: int = 16,
    generator: torch.Generator | None = None,
    seed: int = 0,
    robust: bool = True,
) -> float:
    """Scene-level scale: median of ``per_frame_scale`` over ``sample_frames(S, num_frames, generator, seed)``.

    Args mirror ``per_frame_scale`` ([S, H, W] maps) and ``sample_frames``. With an even number of usable
    frames the median is the mean of the two middle values.

    Returns:
        The scale ``s`` with ``metric ~= s * relative``.

    Raises:
        DataError: when no sampled frame has a usable pixel.
    """
    _check_maps(rel_depth, metric_depth, weights, valid)
    idx = sample_frames(rel_depth.shape[0], num_frames, generator, seed).to(rel_depth.device)

    def pick(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.index_select(0, idx)

    scales = per_frame_scale(pick(rel_depth), pick(metric_depth), pick(weights), pick(valid), robust=robust)
    scales = scales[torch.isfinite(scales)]
    if scales.numel() == 0:
        raise DataError("no valid depth pixels in the sampled frames: cannot align the reconstruction to metres")
    return float(torch.quantile(scales.to(torch.float64), 0.5))


def apply_scale(
    depth: Tensor | None, extrinsics: Tensor | None, world_points: Tensor | None, scale: float
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Bring a reconstruction to metres.

    Args:
        depth: [..., H, W] (or [..., H, W, 1]) relative depth, or None.
        extrinsics: [..., 3, 4] or [..., 4, 4] camera-from-world ``[R | t]``, or None. Scaling the world by
            ``s`` maps ``x_cam = R X + t`` to ``s x_cam = R (s X) + s t``: only ``t`` changes.
        world_points: [..., 3] points in the world frame, or None.
        scale: the factor ``s`` (``scene_scale``).

    Returns:
        ``(depth * s, extrinsics with t * s, world_points * s)``; None stays None. Inputs are not modified.
    """
    if not scale > 0:
        raise DataError(f"the alignment scale must be positive, got {scale}")
    new_extr = None
    if extrinsics is not None:
        if extrinsics.shape[-2:] not in ((3, 4), (4, 4)):
            raise ValueError(f"expected extrinsics [..., 3, 4] or [..., 4, 4], got {tuple(extrinsics.shape)}")
        new_extr = extrinsics.clone()
        new_extr[..., :3, 3] = extrinsics[..., :3, 3] * scale
    return (
        None if depth is None else depth * scale,
        new_extr,
        None if world_points is None else world_points * scale,
    )
