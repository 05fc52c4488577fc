"""3D patch construction: paper Sec. 3.3, Eq. 3 (patch back-projection) and Eq. 4 (MLP 3D position embedding).

Eq. 3: ``P_v = R^-1 (K^-1 [u, v, 1]^T D) - R^-1 t`` for a camera-from-world extrinsic ``[R | t]`` (OpenCV axes,
pixel centres at integer coordinates, as VGGT). Each patch's 3D position is the centroid of the world points
of its ``patch_size x patch_size`` pixels. Eq. 4: ``T_3D = T'_lang + MLP(P_v)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from vidllm_core.geometry.unproject import unproject_depth_to_world
from vidllm_core.layers.mlp import Mlp


def backproject_pixels(depth: Tensor, extrinsic: Tensor, intrinsic: Tensor) -> Tensor:
    """World point of every pixel (Eq. 3 per pixel).

    Args:
        depth: [S, H, W] depth along the camera z axis.
        extrinsic: [S, 3, 4] camera-from-world ``[R | t]``.
        intrinsic: [S, 3, 3] pixel intrinsics (pixel centres at integer coordinates).

    Returns:
        [S, H, W, 3] world points, in the dtype of ``depth``.
    """
    if depth.ndim != 3:
        raise ValueError(f"expected depth [S, H, W], got {tuple(depth.shape)}")
    s, h, w = depth.shape
    if extrinsic.shape != (s, 3, 4) or intrinsic.shape != (s, 3, 3):
        raise ValueError(
            f"expected extrinsic [{s}, 3, 4] and intrinsic [{s}, 3, 3], got {tuple(extrinsic.shape)} "
            f"and {tuple(intrinsic.shape)}"
        )
    return unproject_depth_to_world(depth, extrinsic.to(depth.dtype), intrinsic.to(depth.dtype))


def backproject_patches(
    depth: Tensor, extrinsic: Tensor, intrinsic: Tensor, patch_size: int, grid: tuple[int, int]
) -> Tensor:
    """World position of each patch: the centroid of its pixels' back-projected points (Eq. 3).

    Args:
        depth: [S, H, W] metric depth, with H = h * patch_size and W = w * patch_size.
        extrinsic: [S, 3, 4] camera-from-world ``[R | t]`` (metres).
        intrinsic: [S, 3, 3] pixel intrinsics.
        patch_size: patch side in pixels.
        grid: (h, w) patch grid.

    Returns:
        [S, h, w, 3] world coordinates of each patch.
    """
    gh, gw = grid
    if depth.ndim != 3 or depth.shape[1:] != (gh * patch_size, gw * patch_size):
        raise ValueError(f"depth {tuple(depth.shape)} does not match grid {(gh, gw)} x patch size {patch_size}")
    return patch_centroids(backproject_pixels(depth, extrinsic, intrinsic), patch_size)


def patch_centroids(points: Tensor, patch_size: int) -> Tensor:
    """Average per-pixel world points [S, H, W, 3] over each ``patch_size`` square -> [S, h, w, 3]."""
    s, h, w, _ = points.shape
    return points.reshape(s, h // patch_size, patch_size, w // patch_size, patch_size, 3).mean(dim=(2, 4))


class Patch3DEmbedding(nn.Module):
    """Eq. 4: ``T_3D = T'_lang + P'_v`` with ``P'_v = MLP(P_v)``, an MLP ``3 -> hidden -> C`` with GELU.

    Args:
        embed_dim: C, the width of the language tokens.
        hidden_dim: hidden width of the MLP (default ``embed_dim``).
    """

    def __init__(self, embed_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.mlp = Mlp(3, hidden_dim or embed_dim, embed_dim)

    def embed(self, points: Tensor) -> Tensor:
        """``P'_v``: [..., 3] world points (metres) -> [..., C]."""
        return self.mlp(points)

    def forward(self, lang_tokens: Tensor, patch_points: Tensor) -> Tensor:
        """3D patch tokens.

        Args:
            lang_tokens: ``T'_lang``, [B*S, N, C].
            patch_points: ``P_v``, [B*S, h, w, 3] (``backproject_patches``) or [B*S, N, 3], with N = h*w.

        Returns:
            ``T_3D``, [B*S, N, C].
        """
        points = patch_points.reshape(patch_points.shape[0], -1, 3)
        if points.shape[:2] != lang_tokens.shape[:2]:
            raise ValueError(f"{tuple(patch_points.shape)} patch points for {tuple(lang_tokens.shape)} tokens")
        return lang_tokens + self.embed(points.to(lang_tokens.dtype))
