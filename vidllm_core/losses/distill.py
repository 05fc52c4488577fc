"""Stage-1 dual-teacher distillation losses: Vid-LLM paper Sec. 3.4, Eq. 5 (total), Eq. 6 (feature terms), Eq. 7 (L_sc).

All functions take tokens that are already projected to a common width (the linear projection layers are modules
owned by the training code) and that carry patch tokens only (no CLS / register tokens).

Named dimensions: B batch, N / M token counts, C channels, H x W token grid (N = H * W, row-major).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "geometry_feature_loss",
    "semantic_feature_loss",
    "structural_consistency_loss",
    "match_token_grid",
    "distillation_loss",
]

_NORM_EPS = 1e-6


def _upcast(x: Tensor) -> Tensor:
    """Compute losses in float32 when inputs come in half precision (bf16 / fp16 autocast outputs)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_tokens(name: str, x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"{name} must be [B, N, C], got shape {tuple(x.shape)}")


def _normalize(x: Tensor) -> Tensor:
    """Norm(.) of the paper: L2 normalisation along the channel axis (eps 1e-6 keeps zero tokens finite)."""
    return F.normalize(x, p=2.0, dim=-1, eps=_NORM_EPS)


def geometry_feature_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """L_geo^feat of Eq. 6 (left): mean over tokens of ||Norm(T'_geom,i) - Norm(T^geo_tea,i)||_2^2.

    Args:
        student: T'_geom after the projection, [B, N, C].
        teacher: geometry-teacher patch tokens on the same grid, [B, N, C].

    Returns:
        Scalar: the per-item token mean, averaged over the batch. Lies in [0, 4].
    """
    _check_tokens("student", student)
    _check_tokens("teacher", teacher)
    if student.shape != teacher.shape:
        raise ValueError(
            f"geometry student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ; "
            "project to a common width and match the token grid (match_token_grid) first"
        )
    student = _upcast(student)
    diff = _normalize(student) - _normalize(teacher.to(student.dtype))
    return diff.pow(2).sum(dim=-1).mean()


def semantic_feature_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """L_lang^feat of Eq. 6 (right): 1 - cos(Pool(T'_lang), Pool(T^lang_tea)), Pool = mean over tokens.

    Args:
        student: T'_lang after the projection, [B, N, C].
        teacher: semantic-teacher patch tokens, [B, M, C]; M may differ from N.

    Returns:
        Scalar: 1 - cosine per item, averaged over the batch. Lies in [0, 2].
    """
    _check_tokens("student", student)
    _check_tokens("teacher", teacher)
    if student.shape[0] != teacher.shape[0] or student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"semantic student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must share B and C"
        )
    student = _upcast(student)
    pooled_s = student.mean(dim=1)
    pooled_t = teacher.to(student.dtype).mean(dim=1)
    return (1.0 - F.cosine_similarity(pooled_s, pooled_t, dim=-1, eps=_NORM_EPS)).mean()


def _gram(geom: Tensor, lang: Tensor) -> Tensor:
    """S = Z Z^T with Z = [Norm(geom); Norm(lang)] concatenated along the token axis: [B, M, M]."""
    z = torch.cat([_normalize(geom), _normalize(lang)], dim=1)
    return z @ z.transpose(1, 2)


def structural_consistency_loss(
    student_geom: Tensor, student_lang: Tensor, teacher_geom: Tensor, teacher_lang: Tensor
) -> Tensor:
    """L_sc of Eq. 7: ||S_stu - S_tea||_F^2 / M^2 with S = Z Z^T, Z = [Norm(T_geom); Norm(T_lang)] in R^{M x C}.

    Args:
        student_geom: [B, Ng, Cs]; student_lang: [B, Nl, Cs] (same width Cs, concatenated along tokens).
        teacher_geom: [B, Ng, Ct]; teacher_lang: [B, Nl, Ct] (same width Ct; Ct may differ from Cs because the
            Gram matrices are M x M with M = Ng + Nl). Teacher grids must already match the student's
            (see `match_token_grid`).

    Returns:
        Scalar: per-item value averaged over the batch.
    """
    for name, x in (
        ("student_geom", student_geom),
        ("student_lang", student_lang),
        ("teacher_geom", teacher_geom),
        ("teacher_lang", teacher_lang),
    ):
        _check_tokens(name, x)
    if student_geom.shape[-1] != student_lang.shape[-1] or teacher_geom.shape[-1] != teacher_lang.shape[-1]:
        raise ValueError("geometry and language tokens must share a width on each side to be concatenated into Z")
    if student_geom.shape[:2] != teacher_geom.shape[:2] or student_lang.shape[:2] != teacher_lang.shape[:2]:
        raise ValueError(
            f"token counts differ: student geom {tuple(student_geom.shape[:2])} vs teacher "
            f"{tuple(teacher_geom.shape[:2])}, student lang {tuple(student_lang.shape[:2])} vs teacher "
            f"{tuple(teacher_lang.shape[:2])}; resample the teacher grids with match_token_grid"
        )
    student_geom, student_lang = _upcast(student_geom), _upcast(student_lang.to(student_geom.dtype))
    s_stu = _gram(student_geom, student_lang)
    s_tea = _gram(teacher_geom.to(student_geom.dtype), teacher_lang.to(student_geom.dtype))
    m = s_stu.shape[-1]
    return (s_stu - s_tea).pow(2).sum(dim=(-2, -1)).mean() / (m * m)


def match_token_grid(tokens: Tensor, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Tensor:
    """Resample patch tokens laid out row-major on a src_hw grid onto a dst_hw grid (bilinear, half-pixel centres).

    Used to put a teacher's tokens (e.g. CLIP 24 x 24) on the student's grid (e.g. DINO 37 x 37) before Eq. 6 (left)
    and Eq. 7, which compare tokens one to one. `align_corners=False`, no antialiasing: a token of the output is the
    bilinear blend of the (up to) four input tokens whose patch centres surround its own patch centre.

    Args:
        tokens: [B, N, C] with N = src_hw[0] * src_hw[1].
        src_hw: (H, W) of the input grid.
        dst_hw: (H', W') of the output grid.

    Returns:
        [B, H' * W', C]; the input itself when the grids are equal.
    """
    _check_tokens("tokens", tokens)
    (h, w), (h2, w2) = tuple(src_hw), tuple(dst_hw)
    if min(h, w, h2, w2) <= 0:
        raise ValueError(f"grid sizes must be positive, got src {src_hw} dst {dst_hw}")
    b, n, c = tokens.shape
    if n != h * w:
        raise ValueError(f"{n} tokens do not fill a {h} x {w} grid")
    if (h, w) == (h2, w2):
        return tokens
    grid = tokens.transpose(1, 2).reshape(b, c, h, w)
    out = F.interpolate(grid, size=(h2, w2), mode="bilinear", align_corners=False)
    return out.reshape(b, c, h2 * w2).transpose(1, 2)


def distillation_loss(
    student_geom: Tensor,
    student_lang: Tensor,
    teacher_geom: Tensor,
    teacher_lang: Tensor,
    lam: float,
    *,
    student_hw: tuple[int, int] | None = None,
    teacher_geom_hw: tuple[int, int] | None = None,
    teacher_lang_hw: tuple[int, int] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """L_distill of Eq. 5: L_geo^feat + L_lang^feat + lam * L_sc.

    Args:
        student_geom: projected T'_geom, [B, N, C]. student_lang: projected T'_lang, [B, N, C].
        teacher_geom: geometry-teacher tokens [B, Ng, C]; teacher_lang: semantic-teacher tokens [B, Nl, C].
        lam: lambda of Eq. 5.
        student_hw, teacher_geom_hw, teacher_lang_hw: token grids; when given and different, the teacher tokens
            are resampled onto the student grid (`match_token_grid`) for L_geo^feat and L_sc. L_lang^feat uses the
            teacher tokens as given (pooling does not need matching grids).

    Returns:
        (total, {"geo_feat", "lang_feat", "sc": unweighted scalar terms, detached}).
    """
    tea_geom, tea_lang = teacher_geom, teacher_lang
    if student_hw is not None:
        if teacher_geom_hw is not None:
            tea_geom = match_token_grid(teacher_geom, teacher_geom_hw, student_hw)
        if teacher_lang_hw is not None:
            tea_lang = match_token_grid(teacher_lang, teacher_lang_hw, student_hw)
    geo = geometry_feature_loss(student_geom, tea_geom)
    lang = semantic_feature_loss(student_lang, teacher_lang)
    sc = structural_consistency_loss(student_geom, student_lang, tea_geom, tea_lang)
    total = geo + lang + lam * sc
    return total, {"geo_feat": geo.detach(), "lang_feat": lang.detach(), "sc": sc.detach()}
