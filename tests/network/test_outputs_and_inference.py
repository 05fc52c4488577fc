"""Issue 16: choosing the reconstruction outputs, keeping only the aggregator layers the heads read, the DPT heads'
inference paths (1x1 convs as matmuls, out_conv before the resize, in-place adds) and the bf16 inference mode."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from vidllm_core.convert.vggt import build_model
from vidllm_core.heads.dpt import FeatureFusionBlock, conv1x1
from vidllm_core.models.reconstruction import ALL_OUTPUTS, DEPTH_AND_CAMERAS, VGGTReconstruction

CFG = {
    "aggregator": {"embed_dim": 32, "depth": 6, "num_heads": 2, "patch_embed": "tiny", "img_size": 28},
    "dinov2_patch_embed": {"img_size": 28, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "camera_head": {"dim_in": 64, "trunk_depth": 2, "num_heads": 2},
    "point_head": {"dim_in": 64, "features": 16, "out_channels": [8, 16, 32, 32], "intermediate_layer_idx": [0, 1, 2, 3],
                   "output_dim": 4, "activation": "inv_log", "frames_chunk_size": 2},
    "depth_head": {"dim_in": 64, "features": 16, "out_channels": [8, 16, 32, 32], "intermediate_layer_idx": [0, 1, 3, 4],
                   "output_dim": 2, "activation": "exp", "frames_chunk_size": 2},
}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> VGGTReconstruction:
    torch.manual_seed(0)
    m = build_model(CFG)
    with torch.no_grad():
        m.aggregator.camera_token.normal_()
        m.aggregator.register_token.normal_()
    return m.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(3, 3, 28, 42, generator=torch.Generator().manual_seed(1))


def test_outputs_subset_equals_the_full_run(model: VGGTReconstruction, images: torch.Tensor) -> None:
    with torch.inference_mode():
        full = model(images)
        part = model(images, outputs=DEPTH_AND_CAMERAS)
        depth_only = model(images, outputs={"depth"})
    assert set(full) == {"pose_enc", "pose_enc_list", "depth", "depth_conf", "world_points", "world_points_conf"}
    assert set(part) == {"pose_enc", "pose_enc_list", "depth", "depth_conf"}
    assert set(depth_only) == {"depth", "depth_conf"}
    for key, value in part.items():
        if key != "pose_enc_list":
            torch.testing.assert_close(value, full[key], rtol=0, atol=0)
    torch.testing.assert_close(depth_only["depth"], full["depth"], rtol=0, atol=0)


def test_unknown_or_empty_outputs_are_refused(model: VGGTReconstruction, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="subset"):
        model(images, outputs={"depth", "normals"})
    with pytest.raises(ValueError, match="subset"):
        model(images, outputs=set())


def test_only_the_layers_the_heads_read_are_kept(model: VGGTReconstruction, images: torch.Tensor) -> None:
    assert model.layers_read(ALL_OUTPUTS) == {0, 1, 2, 3, 4, 5}
    assert model.layers_read({"depth"}) == {0, 1, 3, 4}
    with torch.inference_mode():
        all_layers, _ = model.aggregator(images[None])
        kept, _ = model.aggregator(images[None], keep_layers={0, 3})
    assert [i for i, t in enumerate(kept) if t is not None] == [0, 3]
    torch.testing.assert_close(kept[3], all_layers[3], rtol=0, atol=0)


def test_return_tokens_still_returns_every_layer(model: VGGTReconstruction, images: torch.Tensor) -> None:
    with torch.inference_mode():
        out = model(images, return_tokens=True, outputs={"depth"})
    assert all(t is not None for t in out["aggregated_tokens"])


def test_conv1x1_matches_the_convolution() -> None:
    conv = torch.nn.Conv2d(24, 8, kernel_size=1)
    x = torch.randn(3, 24, 5, 7)
    tokens = torch.randn(3, 35, 24)
    with torch.inference_mode():
        torch.testing.assert_close(conv1x1(conv, x), conv(x), rtol=1e-5, atol=1e-6)
        grid = tokens.transpose(1, 2).reshape(3, 24, 5, 7)
        torch.testing.assert_close(conv1x1(conv, tokens.transpose(1, 2), (5, 7)), conv(grid), rtol=1e-5, atol=1e-6)
    x.requires_grad_(True)
    conv1x1(conv, x).sum().backward()  # the autograd path is the convolution itself
    assert x.grad is not None


def test_fusion_block_equals_the_official_order() -> None:
    torch.manual_seed(0)
    block = FeatureFusionBlock(8).eval()
    x0, x1 = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        out = x0 + block.resConfUnit1(x1)
        out = block.resConfUnit2(out)
        out = F.interpolate(out, size=(11, 9), mode="bilinear", align_corners=True)
        official = block.out_conv(out)
        with torch.inference_mode():
            ours = block(x0.clone(), x1.clone(), size=(11, 9))
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)
    ours_grad = block(x0, x1, size=(11, 9))  # the training path: no in-place ops
    torch.testing.assert_close(ours_grad, official, rtol=1e-5, atol=1e-6)


def test_bf16_inference_mode_is_close_to_float32(model: VGGTReconstruction, images: torch.Tensor) -> None:
    with torch.inference_mode():
        ref = model(images)
        out = model(images, autocast_dtype=torch.bfloat16)
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert out[key].dtype == torch.float32
        err = (out[key] - ref[key]).abs().max() / max(1.0, ref[key].abs().max().item())
        assert err < 0.05, (key, err.item())


def test_training_path_has_gradients(model: VGGTReconstruction, images: torch.Tensor) -> None:
    m = copy.deepcopy(model).train()
    out = m(images, outputs=DEPTH_AND_CAMERAS)
    (out["depth"].mean() + out["pose_enc"].mean()).backward()
    assert m.depth_head.scratch.refinenet1.out_conv.weight.grad is not None
    assert m.point_head.projects[0].weight.grad is None


def test_separable_uv_embedding_adds_the_official_map_bit_for_bit() -> None:
    from vidllm_core.heads.dpt import add_uv_pos_embed, grid_sincos_embed, uv_grid

    x = torch.randn(3, 16, 7, 9)
    official = x + (grid_sincos_embed(uv_grid(9, 7, 56 / 42), 16) * 0.1).permute(2, 0, 1)[None]
    with torch.inference_mode():
        assert torch.equal(add_uv_pos_embed(x.clone(), 56, 42, cache={}), official)
    assert torch.equal(add_uv_pos_embed(x.clone(), 56, 42), official)
