"""Metric depth loss (Eq. 9) against hand-computed values."""

import math

import pytest
import torch

from vidllm_core.losses import metric_depth_loss

E = math.e


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_metric_depth_by_hand():
    # gt = 1, pred = [[e, 1], [1, 1/e]], eps = 0: e_i = [1, 0, 0, -1], b = 0,
    # robust = (1/(1 + 0.5) + 0 + 0 + 1/(1 + 0.5)) / 4 = 1/3 -> L = 0 + 1/3.
    pred = t([[[E, 1.0], [1.0, 1 / E]]])
    gt = torch.ones_like(pred)
    valid = torch.ones_like(pred, dtype=torch.bool)
    assert metric_depth_loss(pred, gt, valid, alpha=0.5, eps=0.0).item() == pytest.approx(1 / 3, abs=1e-12)


def test_metric_depth_masked_pixel_by_hand():
    # Last pixel invalid (gt 0 there: log would be -inf). e = [1, 0, 0], b = 1/3, e - b = [2/3, -1/3, -1/3]:
    # (4/9)/(1 + 1/3) = 1/3, (1/9)/(1 + 1/6) = 2/21 twice -> robust = (1/3 + 4/21)/3 = 11/63; b^2 = 1/9 = 7/63.
    pred = t([[[E, 1.0], [1.0, 123.0]]])
    gt = t([[[1.0, 1.0], [1.0, 0.0]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    pred.requires_grad_(True)
    loss = metric_depth_loss(pred, gt, valid, alpha=0.5, eps=0.0)
    assert loss.item() == pytest.approx(18 / 63, abs=1e-12)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 1, 1] == 0
    # Changing the masked pixel (even to NaN) leaves the loss unchanged.
    pred2 = pred.detach().clone()
    pred2[0, 1, 1] = float("nan")
    assert metric_depth_loss(pred2, gt, valid, alpha=0.5, eps=0.0).item() == pytest.approx(18 / 63, abs=1e-12)


def test_metric_depth_pure_scale_error_and_zero():
    gt = torch.rand(2, 5, 6, dtype=torch.float64) + 0.5
    valid = torch.rand(2, 5, 6) > 0.2
    # pred = c * gt with eps = 0: every e_i = log c, so L = (log c)^2 whatever alpha.
    assert metric_depth_loss(1.7 * gt, gt, valid, alpha=2.0, eps=0.0).item() == pytest.approx(math.log(1.7) ** 2, rel=1e-10)
    assert metric_depth_loss(gt, gt, valid, alpha=0.5, eps=1e-6).item() == pytest.approx(0.0, abs=1e-15)


def test_metric_depth_alpha_downweights_large_residuals():
    gt = torch.ones(1, 4, 4, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 0, 0] = 100.0
    valid = torch.ones_like(gt, dtype=torch.bool)
    losses = [metric_depth_loss(pred, gt, valid, alpha=a, eps=0.0).item() for a in (0.0, 0.5, 5.0)]
    assert losses[0] > losses[1] > losses[2] > 0


def test_metric_depth_empty_image_and_batch():
    pred = torch.rand(2, 3, 3, dtype=torch.float64) + 0.5
    gt = torch.rand(2, 3, 3, dtype=torch.float64) + 0.5
    valid = torch.ones(2, 3, 3, dtype=torch.bool)
    valid[1] = False
    gt[1] = 0.0
    # Per-image mean over images with a valid pixel: image 1 adds nothing.
    both = metric_depth_loss(pred, gt, valid, alpha=0.5, eps=1e-3)
    only0 = metric_depth_loss(pred[:1], gt[:1], valid[:1], alpha=0.5, eps=1e-3)
    assert both.item() == pytest.approx(only0.item(), rel=1e-12)
    p = pred.clone().requires_grad_(True)
    none = metric_depth_loss(p, gt, torch.zeros_like(valid), alpha=0.5, eps=1e-3)
    none.backward()
    assert none.item() == 0.0 and torch.isfinite(p.grad).all()


def test_metric_depth_bad_args():
    x = torch.ones(1, 2, 2)
    with pytest.raises(ValueError):
        metric_depth_loss(x, x, x.bool(), alpha=-1.0, eps=0.0)
    with pytest.raises(ValueError):
        metric_depth_loss(x, torch.ones(1, 2, 3), x.bool(), alpha=1.0, eps=0.0)
