"""Voxel pooling of 3D patch tokens: averages, budget, determinism, gradients, padding."""

from __future__ import annotations

import pytest
import torch

from vidllm_core.language.pooling import farthest_point_sample, voxel_pool


def test_hand_made_average() -> None:
    # voxel 1 m: tokens 0, 1 share cell (0,0,0); token 2 alone in (2,0,0); token 3 invalid; token 4 has a NaN xyz.
    xyz = torch.tensor([[[0.1, 0.2, 0.3], [0.5, 0.6, 0.9], [2.5, 0.1, 0.1], [0.2, 0.2, 0.2], [float("nan"), 0, 0]]])
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [10.0, 10.0], [100.0, 100.0], [50.0, 50.0]]])
    valid = torch.tensor([[True, True, True, False, True]])
    out = voxel_pool(tokens, xyz, valid, voxel_size=1.0, budget=10)
    assert out.tokens.shape == (1, 2, 2) and out.mask.tolist() == [[True, True]]
    torch.testing.assert_close(out.tokens[0, 0], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(out.tokens[0, 1], torch.tensor([10.0, 10.0]))
    torch.testing.assert_close(out.xyz[0, 0], torch.tensor([0.3, 0.4, 0.6]))
    torch.testing.assert_close(out.xyz[0, 1], torch.tensor([2.5, 0.1, 0.1]))


def test_negative_coordinates_use_floor() -> None:
    # -0.1 and 0.1 are in different 1 m cells (floor), so they must not be averaged together.
    xyz = torch.tensor([[[-0.1, 0.0, 0.0], [0.1, 0.0, 0.0]]])
    out = voxel_pool(torch.ones(1, 2, 3), xyz, voxel_size=1.0, budget=8)
    assert int(out.mask.sum()) == 2


@pytest.mark.parametrize("reduction", ["coarsen", "fps"])
def test_budget_padding_and_gradients(reduction: str) -> None:
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(2, 3000, 3, generator=g) * torch.tensor([6.0, 5.0, 3.0])
    xyz[1, 1500:] = float("nan")  # second item: half the tokens have no depth
    tokens = torch.randn(2, 3000, 16, generator=g, requires_grad=True)
    out = voxel_pool(tokens, xyz, voxel_size=0.2, budget=100, reduction=reduction)
    counts = out.mask.sum(1)
    assert out.tokens.shape[1] <= 100 and bool((counts <= 100).all()) and bool((counts > 50).all())
    assert not out.tokens[~out.mask].abs().any() and not out.xyz[~out.mask].abs().any()
    if reduction == "coarsen":
        assert bool((out.voxel_size > 0.2).all())
    out.tokens[out.mask].sum().backward()
    assert tokens.grad is not None and bool(tokens.grad[0].abs().sum() > 0)
    assert not tokens.grad[1, 1500:].abs().any()  # ignored tokens get no gradient
    again = voxel_pool(tokens.detach(), xyz, voxel_size=0.2, budget=100, reduction=reduction)
    assert torch.equal(again.tokens, out.tokens.detach()) and torch.equal(again.xyz, out.xyz)


def test_order_invariant_and_under_budget_is_plain_voxel_pool() -> None:
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(1, 500, 3, generator=g) * 2.0
    tokens = torch.randn(1, 500, 8, generator=g)
    out = voxel_pool(tokens, xyz, voxel_size=0.5, budget=1000)
    assert int(out.mask.sum()) == torch.unique(torch.floor(xyz[0] / 0.5), dim=0).shape[0]
    perm = torch.randperm(500, generator=g)
    out2 = voxel_pool(tokens[:, perm], xyz[:, perm], voxel_size=0.5, budget=1000)
    torch.testing.assert_close(out.tokens, out2.tokens)
    torch.testing.assert_close(out.xyz, out2.xyz)
    assert float(out.voxel_size[0]) == 0.5


def test_empty_item_and_bad_args() -> None:
    out = voxel_pool(torch.ones(2, 4, 3), torch.zeros(2, 4, 3), torch.tensor([[True] * 4, [False] * 4]), 0.1, 10)
    assert out.mask.tolist() == [[True], [False]]
    with pytest.raises(ValueError):
        voxel_pool(torch.ones(1, 4, 3), torch.zeros(1, 4, 2))
    with pytest.raises(ValueError):
        voxel_pool(torch.ones(1, 4, 3), torch.zeros(1, 4, 3), budget=0)


def test_farthest_point_sample_spreads() -> None:
    pts = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [5.0, 0, 0], [-5.0, 0, 0], [0.05, 0, 0]])
    idx = farthest_point_sample(pts, 3).tolist()
    assert sorted(idx) == [2, 3, 4] or sorted(idx)[1:] == [2, 3]
    assert set(idx[1:]) == {2, 3}
