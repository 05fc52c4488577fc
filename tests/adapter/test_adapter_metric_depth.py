"""Metric Depth Model (Sec. 3.2): shapes, positivity, ordinal bin distribution, bounds, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from vidllm_core.errors import ConfigError
from vidllm_core.models.metric_depth import MetricDepthModel

DIM, BINS, MIN_D, MAX_D, P = 32, 16, 0.2, 8.0, 14
GRID, SIZE = (2, 3), (28, 42)


def _model(seed: int = 0) -> MetricDepthModel:
    torch.manual_seed(seed)
    return MetricDepthModel(DIM, features=16, out_channels=(8, 16, 32, 32), num_bins=BINS, min_depth=MIN_D,
                            max_depth=MAX_D, patch_size=P)


def _layers(seed: int = 0, frames: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(frames, GRID[0] * GRID[1], DIM, generator=g) for _ in range(4)]


def _scramble_bin_head(model: MetricDepthModel, refine: bool) -> None:
    """Large random weights in the bin head, so the distribution is far from its uniform initialisation."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        model.ordinal_logits.weight.copy_(3.0 * torch.randn(model.ordinal_logits.weight.shape, generator=g))
        model.ordinal_logits.bias.copy_(2.0 * torch.randn(model.ordinal_logits.bias.shape, generator=g))
        if refine:
            model.center_refine.weight.copy_(5.0 * torch.randn(model.center_refine.weight.shape, generator=g))
            model.center_refine.bias.copy_(5.0 * torch.randn(model.center_refine.bias.shape, generator=g))


def test_shapes_positive_and_forward_matches_bins() -> None:
    model = _model()
    out = model.predict_bins(_layers(), GRID, SIZE)
    assert out.depth.shape == (2, *SIZE)
    assert out.probs.shape == out.centers.shape == (2, BINS, *SIZE)
    assert out.exceedance.shape == (2, BINS - 1, *SIZE)
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()
    torch.testing.assert_close(model(_layers(), GRID, SIZE), out.depth)


def test_bin_centres_log_uniform() -> None:
    c = _model().bin_centers.double()
    assert math.isclose(c[0].item(), MIN_D, rel_tol=1e-6) and math.isclose(c[-1].item(), MAX_D, rel_tol=1e-6)
    ratios = c[1:] / c[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, ratios[0].item()), rtol=1e-5, atol=0)


@pytest.mark.parametrize("scrambled", [False, True])
def test_probabilities_valid_and_ordinal(scrambled: bool) -> None:
    model = _model()
    if scrambled:
        _scramble_bin_head(model, refine=False)
    out = model.predict_bins(_layers(1), GRID, SIZE)
    assert (out.probs >= 0).all()
    torch.testing.assert_close(out.probs.sum(1), torch.ones_like(out.depth), rtol=0, atol=1e-5)
    # Exceedance P(>k) is non-increasing in k and equals the tail mass of the distribution.
    assert (out.exceedance[:, 1:] <= out.exceedance[:, :-1]).all()
    tail = out.probs.flip(1).cumsum(1).flip(1)[:, 1:]  # sum_{j>k} p(j), k = 1..N-1
    torch.testing.assert_close(out.exceedance, tail, rtol=0, atol=1e-5)


def test_uniform_distribution_at_init() -> None:
    out = _model().predict_bins(_layers(2), GRID, SIZE)
    mean_probs = out.probs.mean(dim=(0, 2, 3))
    torch.testing.assert_close(mean_probs, torch.full_like(mean_probs, 1.0 / BINS), rtol=0.1, atol=0)


def test_depth_within_bounds() -> None:
    model = _model()
    _scramble_bin_head(model, refine=False)  # refinement stays zero (its zero initialisation)
    out = model.predict_bins(_layers(3), GRID, SIZE)
    torch.testing.assert_close(out.centers, model.bin_centers.view(1, -1, 1, 1).expand_as(out.centers))
    assert out.depth.min() >= MIN_D * (1 - 1e-5) and out.depth.max() <= MAX_D * (1 + 1e-5)

    # Saturated ordinal logits reach the bounds: all "exceeds" -> last centre, none -> first centre.
    for bias, expected in ((40.0, MAX_D), (-40.0, MIN_D)):
        with torch.no_grad():
            model.ordinal_logits.weight.zero_()
            model.ordinal_logits.bias.fill_(bias)
        depth = model(_layers(3), GRID, SIZE)
        torch.testing.assert_close(depth, torch.full_like(depth, expected), rtol=1e-5, atol=0)

    # With a (large) refinement, centres move by at most half a bin in log space and keep their order.
    _scramble_bin_head(model, refine=True)
    out = model.predict_bins(_layers(3), GRID, SIZE)
    half_bin = 0.5 * math.log(MAX_D / MIN_D) / (BINS - 1)
    shift = (out.centers / model.bin_centers.view(1, -1, 1, 1)).log().abs()
    assert shift.max() <= half_bin + 1e-5 and shift.max() > 0.5 * half_bin
    assert (out.centers[:, 1:] >= out.centers[:, :-1] * (1 - 1e-5)).all()
    assert out.depth.min() >= MIN_D * math.exp(-half_bin) * (1 - 1e-5)
    assert out.depth.max() <= MAX_D * math.exp(half_bin) * (1 + 1e-5)


def test_gradients_reach_every_parameter() -> None:
    model = _model()
    layers = _layers(4)
    target = torch.rand(2, *SIZE, generator=torch.Generator().manual_seed(5)) * 5 + 0.5
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(2):  # the zero-initialised refinement layer passes gradient on from the second step
        opt.zero_grad()
        (model(layers, GRID, SIZE).log() - target.log()).abs().mean().backward()
        opt.step()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError):
        MetricDepthModel(DIM, out_channels=(8, 16, 32))
    with pytest.raises(ConfigError):
        MetricDepthModel(DIM, min_depth=5.0, max_depth=1.0)
    model = _model()
    with pytest.raises(ValueError, match="patch grid"):
        model(_layers(), GRID, (30, 42))
    with pytest.raises(ValueError, match="4 layers"):
        model(_layers()[:3], GRID, SIZE)
