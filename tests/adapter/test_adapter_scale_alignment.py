"""Real-scale alignment (Sec. 3.2): robust weighted least squares per frame, median over 16 seeded frames."""

from __future__ import annotations

import pytest
import torch

from vidllm_core.errors import DataError
from vidllm_core.geometry.scale_alignment import apply_scale, per_frame_scale, sample_frames, scene_scale

TRUE_SCALE = 3.7


def _scene(seed: int, frames: int = 24, outlier_kind: str = "far") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Metric depth, relative depth = metric / s with 5% noise and 20% gross outliers, and the outlier mask."""
    g = torch.Generator().manual_seed(seed)
    shape = (frames, 24, 32)
    metric = 0.5 + 5.5 * torch.rand(shape, generator=g)
    rel = metric / TRUE_SCALE * (1 + 0.05 * torch.randn(shape, generator=g))
    outliers = torch.rand(shape, generator=g) < 0.2
    if outlier_kind == "far":  # one-sided: the case that biases least squares most
        factor = 2.0 + 3.0 * torch.rand(shape, generator=g)
    else:  # two-sided, log-uniform over a factor e^+-2
        factor = torch.exp(4.0 * torch.rand(shape, generator=g) - 2.0)
    return metric, torch.where(outliers, rel * factor, rel), outliers


@pytest.mark.parametrize("outlier_kind", ["far", "both"])
def test_scene_scale_recovered_within_2_percent_with_uniform_weights(outlier_kind: str) -> None:
    metric, rel, outliers = _scene(0, outlier_kind=outlier_kind)
    assert 0.18 < outliers.float().mean() < 0.22
    estimate = scene_scale(rel, metric, weights=None, seed=0)  # outliers get NO special weight
    assert abs(estimate / TRUE_SCALE - 1) < 0.02, estimate
    # The data is hard: plain (non-robust) least squares misses by far more than 2%.
    plain = scene_scale(rel, metric, seed=0, robust=False)
    assert abs(plain / TRUE_SCALE - 1) > 0.2, plain


def test_scene_scale_with_confidence_weights() -> None:
    metric, rel, outliers = _scene(1)
    g = torch.Generator().manual_seed(2)
    # Confidence as a model would give it: lower on the outliers, but noisy and never zero.
    weights = torch.where(outliers, 0.3, 1.0) * (0.5 + torch.rand(rel.shape, generator=g))
    assert abs(scene_scale(rel, metric, weights, seed=3) / TRUE_SCALE - 1) < 0.02
    assert abs(scene_scale(rel, metric, weights, seed=3, robust=False) / TRUE_SCALE - 1) > 0.02


@pytest.mark.parametrize("robust", [True, False])
def test_exact_scale_without_noise(robust: bool) -> None:
    g = torch.Generator().manual_seed(4)
    metric = 0.3 + 9.0 * torch.rand(5, 16, 16, generator=g)
    scales = torch.tensor([0.5, 1.0, 2.0, 3.7, 10.0])
    rel = metric / scales[:, None, None]
    weights = torch.rand(5, 16, 16, generator=g)
    torch.testing.assert_close(per_frame_scale(rel, metric, weights, robust=robust), scales, rtol=1e-6, atol=0)
    # Scene scale: the median of the five (odd count: the middle value).
    assert abs(scene_scale(rel, metric, weights, robust=robust) - 2.0) < 2e-6


def test_closed_form_matches_weighted_least_squares() -> None:
    g = torch.Generator().manual_seed(5)
    rel = torch.rand(1, 8, 8, generator=g) + 0.1
    met = torch.rand(1, 8, 8, generator=g) + 0.1
    w = torch.rand(1, 8, 8, generator=g)
    r, m, ww = rel.double().flatten(), met.double().flatten(), w.double().flatten()
    expected = (ww * r * m).sum() / (ww * r * r).sum()
    assert abs(per_frame_scale(rel, met, w, robust=False).item() - expected.item()) < 1e-6


def test_invalid_pixels_are_ignored() -> None:
    g = torch.Generator().manual_seed(6)
    metric = 1.0 + torch.rand(2, 8, 8, generator=g)
    rel = metric / 2.5
    rel[0, :2] = float("nan")
    metric[1, :3] = 0.0  # no metric depth there
    rel[1, 3] = 1e6  # masked out explicitly
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    valid[1, 3] = False
    torch.testing.assert_close(per_frame_scale(rel, metric, None, valid, robust=False), torch.tensor([2.5, 2.5]))
    empty = per_frame_scale(rel, metric, None, torch.zeros_like(valid))
    assert torch.isnan(empty).all()
    with pytest.raises(DataError, match="no valid depth"):
        scene_scale(rel, metric, valid=torch.zeros_like(valid))


def test_frame_sampling_is_deterministic() -> None:
    a = sample_frames(100, 16, seed=7)
    b = sample_frames(100, 16, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.numel() == 16 and a.unique().numel() == 16  # without replacement
    assert torch.equal(a, a.sort().values) and 0 <= a.min() and a.max() < 100
    assert not torch.equal(a, sample_frames(100, 16, seed=8))
    assert torch.equal(sample_frames(10, 16, seed=7), torch.arange(10))  # all frames when S <= 16
    assert torch.equal(sample_frames(16, 16, seed=7), torch.arange(16))


def test_scene_scale_uses_the_sampled_frames() -> None:
    # Each frame has its own exact scale (= its index + 1): the result must be the median over the sample.
    frames = 40
    metric = torch.ones(frames, 4, 4)
    rel = metric / (torch.arange(frames, dtype=torch.float32) + 1)[:, None, None]
    idx = sample_frames(frames, 16, seed=9)
    expected = torch.quantile((idx + 1).double(), 0.5).item()
    assert scene_scale(rel, metric, seed=9) == pytest.approx(expected, rel=1e-6)
    assert scene_scale(rel, metric, seed=9) == scene_scale(rel, metric, generator=torch.Generator().manual_seed(9))


def test_apply_scale() -> None:
    g = torch.Generator().manual_seed(10)
    depth = torch.rand(3, 4, 5, generator=g)
    points = torch.randn(3, 4, 5, 3, generator=g)
    extr = torch.randn(3, 3, 4, generator=g)
    d, e, p = apply_scale(depth, extr, points, 2.5)
    torch.testing.assert_close(d, depth * 2.5)
    torch.testing.assert_close(p, points * 2.5)
    torch.testing.assert_close(e[..., :3], extr[..., :3])
    torch.testing.assert_close(e[..., 3], extr[..., 3] * 2.5)
    assert not torch.equal(extr[..., 3], e[..., 3])  # input untouched, a new tensor returned

    # Consistency: scaled world points project to the same pixels with the scaled camera, at scaled depth.
    rot = torch.linalg.qr(torch.randn(3, 3, generator=g)).Q
    cam = torch.cat([rot, torch.randn(3, 1, generator=g)], 1)[None]
    world = torch.randn(1, 7, 3, generator=g) + torch.tensor([0.0, 0.0, 5.0])
    _, cam_s, world_s = apply_scale(None, cam, world, 1.8)
    x = world[0] @ cam[0, :, :3].T + cam[0, :, 3]
    x_s = world_s[0] @ cam_s[0, :, :3].T + cam_s[0, :, 3]
    torch.testing.assert_close(x_s, 1.8 * x)
    assert apply_scale(None, None, None, 2.0) == (None, None, None)
    with pytest.raises(DataError):
        apply_scale(depth, None, None, float("nan"))
