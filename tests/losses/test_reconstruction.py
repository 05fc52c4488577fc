"""Reconstruction losses after VGGT (camera / depth / point, GT normalisation) against hand-computed values."""

import math

import pytest
import torch

from vidllm_core.losses import camera_loss, depth_loss, filter_by_quantile, normalize_gt_scene, point_loss


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ camera
def test_camera_loss_by_hand():
    # K = 2 iterations, weights gamma^(K-k-1) = 0.6 (k=0), 1 (k=1); GT = 0.
    # k=0: |T| = (1,1,1) -> 1; |q| = (0.5,0,0,0) -> 0.125; |fov| = (0.2,0.2) -> 0.2
    # k=1: |T| = (2,0,0) -> 2/3; |q| = (0,0,0,0.4) -> 0.1; |fov| = (0,0.4) -> 0.2
    # T = (0.6*1 + 2/3)/2, R = (0.6*0.125 + 0.1)/2 = 0.0875, FL = (0.6*0.2 + 0.2)/2 = 0.16
    p0 = t([[[1, 1, 1, 0.5, 0, 0, 0, 0.2, 0.2]]])
    p1 = t([[[2, 0, 0, 0, 0, 0, 0.4, 0, 0.4]]])
    gt = torch.zeros(1, 1, 9, dtype=torch.float64)
    total, parts = camera_loss([p0, p1], gt)
    exp_t = (0.6 + 2 / 3) / 2
    assert parts["T"].item() == pytest.approx(exp_t, abs=1e-12)
    assert parts["R"].item() == pytest.approx(0.0875, abs=1e-12)
    assert parts["FL"].item() == pytest.approx(0.16, abs=1e-12)
    assert total.item() == pytest.approx(exp_t + 0.0875 + 0.5 * 0.16, abs=1e-12)


def test_camera_loss_translation_clamp_and_valid_seq():
    gt = torch.zeros(2, 3, 9, dtype=torch.float64)
    pred = gt.clone()
    pred[0, :, 0] = 1000.0  # each T error clamps at 100 -> mean over 3 frames x 3 coords = 100/3
    _, parts = camera_loss([pred[:1]], gt[:1])
    assert parts["T"].item() == pytest.approx(100 / 3, abs=1e-9)
    # Sequence 0 is invalid: its huge errors must not matter; sequence 1 is exact -> 0.
    total, _ = camera_loss([pred], gt, valid_seq=torch.tensor([False, True]))
    assert total.item() == 0.0
    # No valid sequence: 0, still differentiable.
    p = pred.clone().requires_grad_(True)
    total, _ = camera_loss([p], gt, valid_seq=torch.tensor([False, False]))
    total.backward()
    assert total.item() == 0.0 and torch.isfinite(p.grad).all()


def test_camera_loss_zero_when_equal_and_gradients():
    gt = torch.randn(2, 4, 9)
    preds = [gt.clone().requires_grad_(True) for _ in range(4)]
    total, _ = camera_loss(preds, gt)
    assert total.item() == 0.0
    preds = [(gt + 0.1 * torch.randn_like(gt)).requires_grad_(True) for _ in range(4)]
    total, _ = camera_loss(preds, gt)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in preds)
    assert preds[0].grad.abs().max() < preds[-1].grad.abs().max()  # earlier iterations weigh gamma^3 < 1


# ------------------------------------------------------------------------------------------------ depth
PRED = [[1.0, 2.0], [3.0, 5.0]]
GT = [[1.0, 1.0], [2.0, 2.0]]
CONF = [[1.0, 2.0], [1.0, 2.0]]


def _depth_case():
    return t([[PRED]]), t([[CONF]]), t([[GT]]), torch.ones(1, 1, 2, 2, dtype=torch.bool)


def test_depth_loss_by_hand():
    pred, conf, gt, valid = _depth_case()
    # reg = |pred - gt| = [0, 1, 1, 3] -> mean 1.25
    # conf term = reg*conf - 0.2*log(conf) = [0, 2 - 0.2 ln2, 1, 6 - 0.2 ln2] -> mean (9 - 0.4 ln2)/4
    # grad (stride 1): d = [[0,1],[1,3]]; |dx| = 1, 2; |dy| = 1, 2 -> 6 / 4 valid pixels = 1.5
    total, parts = depth_loss(pred, conf, gt, valid, gradient_scales=1, min_valid=1)
    assert parts["reg"].item() == pytest.approx(1.25, abs=1e-12)
    assert parts["conf"].item() == pytest.approx((9 - 0.4 * math.log(2)) / 4, abs=1e-12)
    assert parts["grad"].item() == pytest.approx(1.5, abs=1e-12)
    assert total.item() == pytest.approx(1.25 + (9 - 0.4 * math.log(2)) / 4 + 1.5, abs=1e-12)
    # Two scales: stride 2 leaves a 1 x 1 map with no neighbour pairs -> 0; mean of (1.5, 0) = 0.75.
    _, parts2 = depth_loss(pred, conf, gt, valid, gradient_scales=2, min_valid=1)
    assert parts2["grad"].item() == pytest.approx(0.75, abs=1e-12)


def test_depth_loss_masked_pixel_does_not_matter():
    pred, conf, gt, valid = _depth_case()
    valid[0, 0, 1, 1] = False
    # Remaining reg = [0, 1, 1] -> 2/3; grad: dx row 0 = 1, row 1 pair invalid; dy col 0 = 1, col 1 invalid -> 2/3.
    base, parts = depth_loss(pred, conf, gt, valid, gradient_scales=1, min_valid=1)
    assert parts["reg"].item() == pytest.approx(2 / 3, abs=1e-12)
    assert parts["grad"].item() == pytest.approx(2 / 3, abs=1e-12)
    pred2, gt2, conf2 = pred.clone(), gt.clone(), conf.clone()
    pred2[0, 0, 1, 1], gt2[0, 0, 1, 1], conf2[0, 0, 1, 1] = 1e6, float("nan"), 7.0
    pred2.requires_grad_(True)
    other, _ = depth_loss(pred2, conf2, gt2, valid, gradient_scales=4, min_valid=1)
    ref, _ = depth_loss(pred, conf, gt, valid, gradient_scales=4, min_valid=1)
    assert other.item() == pytest.approx(ref.item(), abs=1e-12)
    other.backward()
    assert torch.isfinite(pred2.grad).all() and pred2.grad[0, 0, 1, 1] == 0


def test_depth_loss_zero_when_equal_min_valid_and_trailing_channel():
    gt = torch.rand(2, 3, 8, 8) + 0.5
    conf = torch.ones_like(gt)
    valid = torch.ones_like(gt, dtype=torch.bool)
    total, parts = depth_loss(gt.clone(), conf, gt, valid)
    assert parts["reg"].item() == 0.0 and parts["grad"].item() == 0.0 and total.item() == 0.0  # log(1) = 0
    pred = (gt + 0.3).requires_grad_(True)
    a, _ = depth_loss(pred, conf, gt, valid)
    b, _ = depth_loss(pred[..., None], conf, gt[..., None], valid)
    assert a.item() == pytest.approx(b.item()) and a.item() > 0
    a.backward()
    assert torch.isfinite(pred.grad).all()
    few = torch.zeros_like(valid)
    few[0, 0, :2, :2] = True  # 4 < 100 valid pixels: the batch is skipped
    skipped, _ = depth_loss(pred, conf, gt, few)
    assert skipped.item() == 0.0


def test_filter_by_quantile():
    v = torch.arange(2000, dtype=torch.float64) / 100
    kept = filter_by_quantile(v, 0.98)
    # 0.98 quantile of 0..19.99 = 0.98 * 1999 / 100 = 19.5902 -> keep 0..19.59 (1960 values > 1000)
    assert kept.numel() == 1960 and kept.max().item() == pytest.approx(19.59)
    # Values clamp at 100 first: 0..1999 -> the quantile is 100, only 0..99 (100 <= 1000 values) would stay,
    # so nothing is dropped.
    assert filter_by_quantile(v * 100, 0.98).numel() == 2000
    # Ties at the threshold are dropped (strictly below): 1500 zeros and 500 ones -> quantile 1 -> 1500 zeros.
    tied = torch.cat([torch.zeros(1500), torch.ones(500)])
    assert filter_by_quantile(tied, 0.98).tolist() == [0.0] * 1500
    small = torch.tensor([1.0, 500.0, 3.0])
    torch.testing.assert_close(filter_by_quantile(small, 0.98), torch.tensor([1.0, 100.0, 3.0]))  # clamp only


def test_depth_quantile_filter_drops_outliers():
    # 1590 small distinct errors i * 1e-4 and 10 outliers of 50 (1600 pixels). The 0.98 quantile lies at
    # position 0.98 * 1599 = 1567.02 of the sorted errors -> errors 0 .. 1567e-4 are kept (1568 > 1000 values),
    # mean 1567 / 2 * 1e-4; the outliers are dropped.
    gt = torch.ones(1, 1, 40, 40, dtype=torch.float64)
    err = torch.cat([torch.arange(1590, dtype=torch.float64) * 1e-4, torch.full((10,), 50.0, dtype=torch.float64)])
    pred = gt + err[torch.randperm(1600)].reshape(1, 1, 40, 40)
    _, parts = depth_loss(pred, torch.ones_like(gt), gt, torch.ones_like(gt, dtype=torch.bool), gradient_scales=0)
    assert parts["reg"].item() == pytest.approx(1567 / 2 * 1e-4, rel=1e-9)
    assert parts["conf"].item() == pytest.approx(1567 / 2 * 1e-4, rel=1e-9)  # conf = 1: same values
    assert parts["grad"].item() == 0.0


# ------------------------------------------------------------------------------------------------ points
def test_point_loss_by_hand():
    # One pixel off by (3, 4, 0): reg = [5, 0, 0, 0] -> 1.25; conf = 1 so conf term = reg -> 1.25.
    # grad: d = (3,4,0) at (0,0): |dx| row 0 = 3 + 4 = 7, |dy| col 0 = 7 -> 14 / 4 = 3.5.
    gt = torch.zeros(1, 1, 2, 2, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 0, 0, 0] = t([3.0, 4.0, 0.0])
    conf = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    valid = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    total, parts = point_loss(pred, conf, gt, valid, gradient_scales=1, min_valid=1)
    assert parts["reg"].item() == pytest.approx(1.25, abs=1e-12)
    assert parts["conf"].item() == pytest.approx(1.25, abs=1e-12)
    assert parts["grad"].item() == pytest.approx(3.5, abs=1e-12)
    assert total.item() == pytest.approx(6.0, abs=1e-12)


def test_point_loss_rotation_invariant_reg():
    gt = torch.randn(1, 2, 4, 4, 3, dtype=torch.float64)
    pred = gt + 0.1 * torch.randn_like(gt)
    conf = torch.rand(1, 2, 4, 4, dtype=torch.float64) + 1
    valid = torch.rand(1, 2, 4, 4) > 0.3
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    _, a = point_loss(pred, conf, gt, valid, gradient_scales=0, min_valid=1)
    _, b = point_loss(pred @ q, conf, gt @ q, valid, gradient_scales=0, min_valid=1)
    assert a["reg"].item() == pytest.approx(b["reg"].item(), rel=1e-10)
    assert a["conf"].item() == pytest.approx(b["conf"].item(), rel=1e-10)


# ------------------------------------------------------------------------------------------------ normalisation
def _scene():
    # Camera 0: R = I, t = (0, 0, -1); camera 1: R = I, t = (0, 0, 2). H = 1, W = 2.
    e = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    e[..., :3, :3] = torch.eye(3, dtype=torch.float64)
    e[0, 0, :, 3] = t([0.0, 0.0, -1.0])
    e[0, 1, :, 3] = t([0.0, 0.0, 2.0])
    world = t([[[[[3.0, 0.0, 1.0], [0.0, 4.0, 1.0]]], [[[0.0, 0.0, 6.0], [1e3, 1e3, 1e3]]]]])  # [1, 2, 1, 2, 3]
    valid = torch.tensor([[[[True, True]], [[True, False]]]])
    depth = t([[[[2.0, 4.0]], [[8.0, 0.0]]]])
    return e, depth, world, valid


def test_normalize_gt_scene_by_hand():
    e, depth, world, valid = _scene()
    out = normalize_gt_scene(e, depth, world, valid)
    # In camera 0: (3,0,0), (0,4,0), (0,0,5) -> distances 3, 4, 5 -> scale 4.
    assert out.scale.tolist() == [4.0]
    torch.testing.assert_close(out.world_points[0, 0, 0], t([[0.75, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(out.world_points[0, 1, 0, 0], t([0.0, 0.0, 1.25]))
    torch.testing.assert_close(out.depth, depth / 4)
    # E1 E0^-1 = [I | (0,0,2) + (0,0,1)] -> translation (0,0,3)/4; E0 E0^-1 = identity.
    torch.testing.assert_close(out.extrinsics[0, 1, :, 3], t([0.0, 0.0, 0.75]))
    torch.testing.assert_close(out.extrinsics[0, 0], torch.eye(4, dtype=torch.float64)[:3])
    out4 = normalize_gt_scene(torch.cat([e, t([[[[0, 0, 0, 1.0]]] * 2])], dim=-2), depth, world, valid)
    assert out4.extrinsics.shape == (1, 2, 4, 4)
    torch.testing.assert_close(out4.extrinsics[..., :3, :], out.extrinsics)


def test_normalize_gt_scene_similarity_invariant():
    e, depth, world, valid = _scene()
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    s, shift = 2.5, t([0.3, -1.0, 4.0])
    world2 = s * world @ q.T + shift  # q = s R p + shift
    e2 = e.clone()
    e2[..., :3, :3] = e[..., :3, :3] @ q.T
    e2[..., :3, 3] = s * e[..., :3, 3] - (e[..., :3, :3] @ q.T @ shift)
    a = normalize_gt_scene(e, depth, world, valid)
    b = normalize_gt_scene(e2, s * depth, world2, valid)
    torch.testing.assert_close(b.scale, s * a.scale)
    torch.testing.assert_close(b.world_points[valid], a.world_points[valid])
    torch.testing.assert_close(b.depth, a.depth)
    torch.testing.assert_close(b.extrinsics, a.extrinsics)


def test_normalize_gt_scene_no_valid_points():
    e, depth, world, valid = _scene()
    out = normalize_gt_scene(e, depth, world, torch.zeros_like(valid))
    assert out.scale.tolist() == [1.0] and torch.isfinite(out.world_points).all()
