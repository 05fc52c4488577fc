"""Issue 16: inference-only fast paths equal the reference computations (metric-depth bins, RoPE table reuse)."""

from __future__ import annotations

import torch

from vidllm_core.layers.rope import RotaryPositionEmbedding2D, patch_positions
from vidllm_core.models.metric_depth import MetricDepthModel


def test_metric_depth_fast_bins_equal_the_bin_distribution() -> None:
    torch.manual_seed(0)
    model = MetricDepthModel(16, features=8, out_channels=(4, 8, 8, 8), num_bins=24).eval()
    torch.nn.init.normal_(model.center_refine.weight, std=0.5)  # refined centres matter
    torch.nn.init.normal_(model.ordinal_logits.weight, std=1.0)
    feats = torch.relu(torch.randn(3, 32, 9, 11) * 3)
    with torch.no_grad():
        ref = model.bins_from_features(feats).depth
        fast = model.depth_from_features(feats)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)


def test_metric_depth_forward_uses_the_same_depth_with_and_without_autograd() -> None:
    torch.manual_seed(0)
    model = MetricDepthModel(16, features=8, out_channels=(4, 8, 8, 8), num_bins=24, patch_size=2).eval()
    layers = [torch.randn(2, 12, 16) for _ in range(4)]
    with torch.no_grad():
        fast = model(layers, (3, 4), (6, 8))
    ref = model(layers, (3, 4), (6, 8))
    assert ref.requires_grad
    torch.testing.assert_close(fast, ref.detach(), rtol=1e-5, atol=1e-6)


def test_rope_reuses_tables_only_for_the_same_unmodified_positions() -> None:
    rope = RotaryPositionEmbedding2D(100.0)
    x = torch.randn(1, 2, 12, 8)
    pos = patch_positions(1, 3, 4).clone()
    first = rope(x, pos)
    torch.testing.assert_close(rope(x, pos), first, rtol=0, atol=0)
    pos.add_(1)  # modified in place: new tables
    fresh = RotaryPositionEmbedding2D(100.0)._compute_tables(4, pos[..., 0], x.dtype)
    moved = rope(x, pos)
    assert not torch.equal(moved, first)
    half = x[..., :4]
    expected = half * fresh[0] + torch.cat((-half[..., 2:], half[..., :2]), dim=-1) * fresh[1]
    torch.testing.assert_close(moved[..., :4], expected, rtol=1e-6, atol=1e-6)
