"""Stage-1 distillation losses (Eq. 5-7) against hand-computed values and their invariances."""

import math

import pytest
import torch

from vidllm_core.losses import (
    distillation_loss,
    geometry_feature_loss,
    match_token_grid,
    semantic_feature_loss,
    structural_consistency_loss,
)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_geometry_feature_loss_by_hand():
    # 1 item, 2 tokens x 2 dims. Norm(student) = (0.6, 0.8), (1, 0); Norm(teacher) = (0.8, 0.6), (0, 1).
    # ||(-0.2, 0.2)||^2 = 0.08, ||(1, -1)||^2 = 2 -> mean over the 2 tokens = 1.04.
    student = t([[[3.0, 4.0], [1.0, 0.0]]])
    teacher = t([[[4.0, 3.0], [0.0, 2.0]]])
    assert geometry_feature_loss(student, teacher).item() == pytest.approx(1.04, abs=1e-12)


def test_geometry_feature_loss_batch_mean_and_scale_invariance():
    a, b = torch.randn(3, 5, 4, dtype=torch.float64), torch.randn(3, 5, 4, dtype=torch.float64)
    per_item = [geometry_feature_loss(a[i : i + 1], b[i : i + 1]) for i in range(3)]
    assert geometry_feature_loss(a, b).item() == pytest.approx(sum(per_item).item() / 3, rel=1e-12)
    # Per-token positive rescaling does not change L2-normalised tokens.
    scale = torch.rand(3, 5, 1, dtype=torch.float64) + 0.1
    assert geometry_feature_loss(a * scale, b).item() == pytest.approx(geometry_feature_loss(a, b).item(), rel=1e-10)
    assert geometry_feature_loss(a, a).item() == pytest.approx(0.0, abs=1e-12)


def test_semantic_feature_loss_by_hand_with_different_token_counts():
    # Pool(student) = (0.5, 0.5) ~ (1, 1); Pool(teacher over M=3 tokens) = (2, 2/3) ~ (3, 1).
    # cos = (3 + 1) / (sqrt(2) sqrt(10)) = 4 / sqrt(20) -> loss = 1 - 2/sqrt(5).
    student = t([[[1.0, 0.0], [0.0, 1.0]]])
    teacher = t([[[2.0, 0.0], [2.0, 0.0], [2.0, 2.0]]])
    assert semantic_feature_loss(student, teacher).item() == pytest.approx(1 - 2 / math.sqrt(5), abs=1e-12)


def test_semantic_feature_loss_permutation_invariant_and_zero_when_equal():
    s, tea = torch.randn(2, 6, 3), torch.randn(2, 4, 3)
    perm = torch.randperm(6)
    assert semantic_feature_loss(s[:, perm], tea).item() == pytest.approx(semantic_feature_loss(s, tea).item(), abs=1e-6)
    assert semantic_feature_loss(s, s).item() == pytest.approx(0.0, abs=1e-6)


def test_structural_consistency_by_hand():
    # Student Z = [(1,0); (0,1)] -> S = I. Teacher Z = [(1,0); (1,1)/sqrt2] -> S = [[1, s], [s, 1]], s = 1/sqrt2.
    # ||S_stu - S_tea||_F^2 = 2 * s^2 = 1; M = 2 -> 1 / 4.
    val = structural_consistency_loss(t([[[1.0, 0.0]]]), t([[[0.0, 5.0]]]), t([[[2.0, 0.0]]]), t([[[1.0, 1.0]]]))
    assert val.item() == pytest.approx(0.25, abs=1e-12)


def test_structural_consistency_rotation_invariant_and_width_free():
    sg, sl = torch.randn(2, 4, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    tg, tl = torch.randn(2, 4, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    base = structural_consistency_loss(sg, sl, tg, tl)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))  # orthogonal: Gram matrices unchanged
    assert structural_consistency_loss(sg, sl, tg @ q, tl @ q).item() == pytest.approx(base.item(), rel=1e-10)
    assert structural_consistency_loss(sg, sl, sg, sl).item() == pytest.approx(0.0, abs=1e-12)


def test_match_token_grid_by_hand():
    # Row of 2 tokens with values 0 and 1 onto a row of 4 (half-pixel centres): sample x = (i + 0.5) / 2 - 0.5
    # = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1) -> 0, 0.25, 0.75, 1.
    tokens = t([[[0.0, 10.0], [1.0, 20.0]]])  # [B=1, N=2, C=2], grid 1 x 2
    out = match_token_grid(tokens, (1, 2), (1, 4))
    assert out.shape == (1, 4, 2)
    torch.testing.assert_close(out[0, :, 0], t([0.0, 0.25, 0.75, 1.0]))
    torch.testing.assert_close(out[0, :, 1], t([10.0, 12.5, 17.5, 20.0]))
    same = torch.randn(2, 6, 3)
    assert match_token_grid(same, (2, 3), (2, 3)) is same
    with pytest.raises(ValueError):
        match_token_grid(same, (2, 2), (3, 3))


def test_distillation_loss_total_and_grid_matching():
    sg = torch.randn(2, 6, 4, requires_grad=True)
    sl = torch.randn(2, 6, 4, requires_grad=True)
    tg, tl = torch.randn(2, 6, 4), torch.randn(2, 4, 4)  # semantic teacher on a 2 x 2 grid, student on 2 x 3
    total, parts = distillation_loss(sg, sl, tg, tl, 0.5, student_hw=(2, 3), teacher_geom_hw=(2, 3), teacher_lang_hw=(2, 2))
    tl_matched = match_token_grid(tl, (2, 2), (2, 3))
    expected = (
        geometry_feature_loss(sg, tg) + semantic_feature_loss(sl, tl) + 0.5 * structural_consistency_loss(sg, sl, tg, tl_matched)
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"geo_feat", "lang_feat", "sc"}
    assert total.item() == pytest.approx((parts["geo_feat"] + parts["lang_feat"] + 0.5 * parts["sc"]).item(), rel=1e-6)
    total.backward()
    assert torch.isfinite(sg.grad).all() and torch.isfinite(sl.grad).all() and sg.grad.abs().sum() > 0


def test_zero_tokens_give_finite_gradients():
    s = torch.zeros(1, 3, 4, requires_grad=True)
    loss = geometry_feature_loss(s, torch.randn(1, 3, 4)) + structural_consistency_loss(s, s, torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        geometry_feature_loss(torch.randn(1, 3, 4), torch.randn(1, 4, 4))
    with pytest.raises(ValueError):
        structural_consistency_loss(torch.randn(1, 3, 4), torch.randn(1, 2, 4), torch.randn(1, 4, 4), torch.randn(1, 2, 4))
