"""Geometry-aware reduction of 3D patch tokens (Vid-LLM Sec. 3.3, Eq. 4) to an LLM token budget, after LLaVA-3D voxel pooling.

Tokens whose back-projected position falls into the same cubic voxel (edge `voxel_size` metres, grid anchored at
the world origin) are averaged; the pooled position is the mean position of its members. When a scene still has
more occupied voxels than `budget`, one of two deterministic reductions applies:

* ``"coarsen"`` (default): the voxel edge grows by a factor 1.25 until the count fits, so every token still
  contributes to some average (no information is dropped, the layout stays a regular grid);
* ``"fps"``: farthest-point sampling over the pooled voxel centres, starting at the voxel nearest to the scene's
  centroid (keeps the finer voxels but drops the unselected ones).

LLaVA-3D subsamples voxels at random instead; both choices here are deterministic, so answers do not depend on a
seed. Named dimensions: B batch, N input tokens (frames x patches), M pooled tokens (M <= budget), C channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from vidllm_core.config import LanguageConfig

__all__ = ["PooledScene", "voxel_pool", "pool_scene_tokens", "farthest_point_sample", "COARSEN_FACTOR", "REDUCTIONS"]

COARSEN_FACTOR = 1.25
REDUCTIONS = ("coarsen", "fps")
_MAX_COARSEN_STEPS = 200  # 1.25 ** 200 ~ 4e19: any finite scene collapses to <= 8 voxels long before


@dataclass
class PooledScene:
    """Output of `voxel_pool`.

    Attributes:
        tokens: [B, M, C] averaged tokens (zeros at padding), differentiable w.r.t. the input tokens.
        xyz: [B, M, 3] mean world position of each pooled token in metres (zeros at padding).
        mask: [B, M] bool, True for real tokens, False for padding (an item may have no real token).
        voxel_size: [B] float, the voxel edge finally used for each item (metres).
    """

    tokens: Tensor
    xyz: Tensor
    mask: Tensor
    voxel_size: Tensor


def _pool_one(tokens: Tensor, xyz: Tensor, voxel_size: float) -> tuple[Tensor, Tensor, Tensor]:
    """Scatter-mean of tokens [n, C] and xyz [n, 3] by voxel; voxels sorted lexicographically by (ix, iy, iz)."""
    _, inverse = _voxel_ids(xyz, voxel_size)
    m = int(inverse.max()) + 1 if inverse.numel() else 0
    counts = torch.zeros(m, dtype=tokens.dtype, device=tokens.device).index_add_(
        0, inverse, torch.ones_like(inverse, dtype=tokens.dtype))
    pooled = tokens.new_zeros(m, tokens.shape[1]).index_add(0, inverse, tokens) / counts[:, None]
    pos = xyz.new_zeros(m, 3).index_add(0, inverse, xyz) / counts[:, None].to(xyz.dtype)
    return pooled, pos, inverse


def _voxel_ids(xyz: Tensor, voxel_size: float) -> tuple[Tensor, Tensor]:
    """(number of occupied voxels as a 0-d tensor, voxel index [n] in lexicographic (ix, iy, iz) order).

    The three integer cell coordinates are packed into one int64 (a 1-D unique is ~10x faster than a row-wise
    one); the row-wise unique is the fallback for scenes wider than 2^20 voxels along an axis.
    """
    cells = torch.floor(xyz.double() / voxel_size).to(torch.int64)
    cells = cells - cells.min(0).values
    extent = cells.max(0).values + 1
    if bool((extent < (1 << 20)).all()):
        packed = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
        uniq, inverse = torch.unique(packed, return_inverse=True)
    else:
        uniq, inverse = torch.unique(cells, dim=0, return_inverse=True)
    return torch.tensor(uniq.shape[0]), inverse


def _count_voxels(xyz: Tensor, voxel_size: float) -> int:
    return int(_voxel_ids(xyz, voxel_size)[0])


def farthest_point_sample(points: Tensor, k: int) -> Tensor:
    """Deterministic farthest-point sampling: indices [k] (k <= n) into points [n, 3].

    Starts at the point nearest to the centroid (ties: lowest index), then repeatedly takes the point farthest
    from the selected set (ties: lowest index). O(n k) time, O(n) memory.
    """
    n = points.shape[0]
    if k >= n:
        return torch.arange(n, device=points.device)
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=points.device)
    p = points.detach().double()
    first = int(torch.argmin(((p - p.mean(0)) ** 2).sum(-1)))
    chosen = torch.empty(k, dtype=torch.long, device=points.device)
    chosen[0] = first
    dist = ((p - p[first]) ** 2).sum(-1)
    for i in range(1, k):
        nxt = int(torch.argmax(dist))
        chosen[i] = nxt
        dist = torch.minimum(dist, ((p - p[nxt]) ** 2).sum(-1))
    return chosen


def voxel_pool(
    tokens: Tensor,
    xyz: Tensor,
    valid: Tensor | None = None,
    voxel_size: float = 0.2,
    budget: int = 1024,
    reduction: str = "coarsen",
) -> PooledScene:
    """Voxel-pool 3D patch tokens to at most `budget` tokens per item.

    Args:
        tokens: [B, N, C] 3D patch tokens T_3D (Eq. 4).
        xyz: [B, N, 3] world position of each token, metres (no gradient flows into it here).
        valid: optional [B, N] bool; False tokens are ignored. Tokens with a non-finite position are ignored too.
        voxel_size: voxel edge in metres (> 0).
        budget: maximum number of pooled tokens per item (>= 1).
        reduction: "coarsen" or "fps" (module docstring).

    Returns:
        `PooledScene` with M = the largest pooled count in the batch (0 if no item has a valid token).
    """
    if tokens.dim() != 3 or xyz.shape != (*tokens.shape[:2], 3):
        raise ValueError(f"tokens [B, N, C] and xyz [B, N, 3] expected, got {tuple(tokens.shape)}, {tuple(xyz.shape)}")
    if valid is not None and valid.shape != tokens.shape[:2]:
        raise ValueError(f"valid must be [B, N] = {tuple(tokens.shape[:2])}, got {tuple(valid.shape)}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    xyz = xyz.detach()
    keep_all = torch.isfinite(xyz).all(-1)
    if valid is not None:
        keep_all = keep_all & valid.to(torch.bool)
    b, _, c = tokens.shape
    items: list[tuple[Tensor, Tensor]] = []
    sizes = torch.full((b,), float(voxel_size), dtype=torch.float64)
    for i in range(b):
        keep = keep_all[i]
        tok_i, xyz_i = (tokens[i], xyz[i]) if bool(keep.all()) else (tokens[i][keep], xyz[i][keep])
        if tok_i.shape[0] == 0:
            items.append((tok_i.new_zeros(0, c), xyz_i.new_zeros(0, 3)))
            continue
        size = float(voxel_size)
        if reduction == "coarsen":
            steps = 0
            while _count_voxels(xyz_i, size) > budget and steps < _MAX_COARSEN_STEPS:
                size *= COARSEN_FACTOR
                steps += 1
        pooled, pos, _ = _pool_one(tok_i, xyz_i, size)
        if pooled.shape[0] > budget:  # "fps", or a budget below the 8 octant cells around the origin
            idx = farthest_point_sample(pos, budget).sort().values
            pooled, pos = pooled[idx], pos[idx]
        sizes[i] = size
        items.append((pooled, pos))
    m = max((p.shape[0] for p, _ in items), default=0)
    out_tok = tokens.new_zeros(b, m, c)
    out_xyz = xyz.new_zeros(b, m, 3)
    mask = torch.zeros(b, m, dtype=torch.bool, device=tokens.device)
    rows = []
    for i, (pooled, pos) in enumerate(items):
        k = pooled.shape[0]
        rows.append(torch.cat([pooled, tokens.new_zeros(m - k, c)]) if k < m else pooled)
        out_xyz[i, :k] = pos
        mask[i, :k] = True
    if rows:
        out_tok = torch.stack(rows)
    return PooledScene(tokens=out_tok, xyz=out_xyz, mask=mask, voxel_size=sizes)


def pool_scene_tokens(tokens: Tensor, xyz: Tensor, config: "LanguageConfig | None",
                      valid: Tensor | None = None) -> PooledScene:
    """`voxel_pool` with a model's language settings (`voxel_size`, `token_budget`, `pool_reduction`; the defaults
    of `LanguageConfig` when the model has none): the one place those settings are read, for Stage-2 training
    (`VidLLM.scene_tokens`), inference (`VidLLM.encode_scene`) and chunked long videos alike."""
    from vidllm_core.config import LanguageConfig

    cfg = config or LanguageConfig()
    return voxel_pool(tokens, xyz, valid, voxel_size=cfg.voxel_size, budget=cfg.token_budget,
                      reduction=cfg.pool_reduction)
