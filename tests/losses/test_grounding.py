"""Grounding losses: 3D IoU, L1, Hungarian matching and the DETR-style set loss."""

import itertools
import math

import pytest
import torch

from vidllm_core.losses import box_iou_3d, box_iou_loss, box_l1_loss, grounding_loss, hungarian_match


def t(x):
    return torch.tensor(x, dtype=torch.float64)


A = [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]  # cube [-1, 1]^3, volume 8
B = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]  # cube [0, 2]^3, volume 8


def test_box_iou_by_hand():
    # Intersection [0, 1]^3 = 1; union 8 + 8 - 1 = 15 -> IoU 1/15; enclosing [-1, 2]^3 = 27 -> GIoU 1/15 - 12/27.
    assert box_iou_3d(t(A), t(B)).item() == pytest.approx(1 / 15, abs=1e-7)
    assert box_iou_3d(t(A), t(B), giou=True).item() == pytest.approx(1 / 15 - 12 / 27, abs=1e-7)
    assert box_iou_3d(t(A), t(A)).item() == pytest.approx(1.0, abs=1e-7)
    assert box_iou_3d(t([0, 0, 0, 0, 0, 0.0]), t([0, 0, 0, 0, 0, 0.0])).item() == 0.0  # zero volume -> 0


def test_box_l1_and_iou_loss_by_hand():
    pred = t([A, [1.0] * 6])
    gt = t([A, [0.0] * 6])
    # L1: (0 + 6) / 2 pairs = 3.
    assert box_l1_loss(pred, gt).item() == pytest.approx(3.0)
    # IoU loss: pair 0 identical -> 0; pair 1 = box centred at 1 with size 1 vs zero-size box -> IoU 0 -> 1.
    assert box_iou_loss(pred, gt).item() == pytest.approx(0.5, abs=1e-6)
    assert box_iou_loss(t([A]), t([B])).item() == pytest.approx(14 / 15, abs=1e-7)
    assert box_l1_loss(torch.zeros(0, 6), torch.zeros(0, 6)).item() == 0.0


def test_iou_losses_translation_invariant_and_differentiable():
    a = torch.rand(5, 6, dtype=torch.float64) + 0.1
    b = torch.rand(5, 6, dtype=torch.float64) + 0.1
    shift = t([3.0, -2.0, 7.0, 0, 0, 0])
    assert box_iou_loss(a + shift, b + shift).item() == pytest.approx(box_iou_loss(a, b).item(), rel=1e-10)
    # Disjoint boxes: IoU has no gradient, GIoU pulls them together.
    p = t([[0.0, 0, 0, 1, 1, 1]]).requires_grad_(True)
    box_iou_loss(p, t([[5.0, 0, 0, 1, 1, 1]]), giou=True).backward()
    assert torch.isfinite(p.grad).all() and p.grad[0, 0] < 0


def test_hungarian_match_by_hand():
    preds = t([[0, 0, 0, 1, 1, 1], [10, 0, 0, 1, 1, 1], [20, 0, 0, 1, 1, 1]])
    gts = t([[20, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    pi, gi = hungarian_match(preds, torch.zeros(3), gts)
    assert pi.tolist() == [0, 2] and gi.tolist() == [1, 0]
    pi, gi = hungarian_match(preds, torch.zeros(3), torch.zeros(0, 6))
    assert pi.numel() == 0 and gi.numel() == 0


def test_hungarian_match_is_optimal_brute_force():
    g = torch.Generator().manual_seed(1)
    preds = torch.rand(4, 6, generator=g, dtype=torch.float64)
    logits = torch.randn(4, generator=g, dtype=torch.float64)
    gts = torch.rand(3, 6, generator=g, dtype=torch.float64)

    def cost(q, j):  # the documented cost, written out per pair
        l1 = (preds[q] - gts[j]).abs().sum().item()
        prob = 1 / (1 + math.exp(-logits[q].item()))
        return -1.0 * prob + 5.0 * l1 - 2.0 * box_iou_3d(preds[q], gts[j]).item()

    best = min(sum(cost(q, j) for j, q in enumerate(perm)) for perm in itertools.permutations(range(4), 3))
    pi, gi = hungarian_match(preds, logits, gts)
    assert sum(cost(q, j) for q, j in zip(pi.tolist(), gi.tolist())) == pytest.approx(best, rel=1e-9)


def test_grounding_loss_by_hand():
    # Item 0: one GT box [1,0,0,2,2,2]; query 1 = A matches it (query 0 is far). Item 1: zero-target query.
    # L1 = |1 - 0| = 1; IoU: intersection 1 x 2 x 2 = 4, union 12 -> 1/3 -> IoU loss 2/3.
    # Objectness targets [[0, 1], [0, 0]], logits [[0, ln3], [ln3, 0]]:
    # BCE = (ln 2 + ln(4/3) + ln 4 + ln 2) / 4.
    pred_boxes = t([[[50, 50, 50, 1, 1, 1], A], [A, B]]).requires_grad_(True)
    logits = t([[0.0, math.log(3)], [math.log(3), 0.0]]).requires_grad_(True)
    gts = [t([[1.0, 0, 0, 2, 2, 2]]), torch.zeros(0, 6)]
    total, parts = grounding_loss(pred_boxes, logits, gts)
    bce = (math.log(2) + math.log(4 / 3) + math.log(4) + math.log(2)) / 4
    assert parts["l1"].item() == pytest.approx(1.0, abs=1e-9)
    assert parts["iou"].item() == pytest.approx(2 / 3, abs=1e-6)
    assert parts["objectness"].item() == pytest.approx(bce, abs=1e-9)
    assert total.item() == pytest.approx(5 * 1 + 2 * 2 / 3 + bce, abs=1e-6)
    total.backward()
    assert torch.isfinite(pred_boxes.grad).all()
    assert pred_boxes.grad[0, 0].abs().sum() == 0 and pred_boxes.grad[1].abs().sum() == 0  # unmatched: no box grad
    w_total, _ = grounding_loss(pred_boxes, logits, gts, weights={"l1": 1.0, "iou": 0.0, "objectness": 2.0})
    assert w_total.item() == pytest.approx(1.0 + 2 * bce, abs=1e-6)


def test_grounding_loss_zero_targets_only_and_bad_weights():
    pred_boxes = torch.rand(2, 3, 6, requires_grad=True)
    logits = torch.zeros(2, 3, requires_grad=True)
    total, parts = grounding_loss(pred_boxes, logits, [torch.zeros(0, 6), torch.zeros(0, 6)])
    assert parts["l1"].item() == 0.0 and parts["objectness"].item() == pytest.approx(math.log(2))
    total.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="unknown grounding weight"):
        grounding_loss(pred_boxes, logits, [torch.zeros(0, 6)] * 2, weights={"giou": 1.0})
