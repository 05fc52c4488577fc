"""Shapes, finiteness, gradients and layout equivalences of the reconstruction network at a tiny size."""

from __future__ import annotations

import time

import pytest
import torch

from vidllm_core.convert.vggt import build_model
from vidllm_core.heads.dpt import DPTHead
from vidllm_core.models.aggregator import Aggregator
from vidllm_core.models.encoder import DinoEncoder
from vidllm_core.models.reconstruction import VGGTReconstruction

TINY = {
    "aggregator": {"embed_dim": 32, "depth": 4, "num_heads": 2, "patch_embed": "tiny", "img_size": 28},
    "dinov2_patch_embed": {"img_size": 28, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "camera_head": {"dim_in": 64, "trunk_depth": 2, "num_heads": 2},
    "point_head": {"dim_in": 64, "features": 16, "out_channels": [8, 16, 32, 32], "intermediate_layer_idx": [0, 1, 2, 3],
                   "output_dim": 4, "activation": "inv_log"},
    "depth_head": {"dim_in": 64, "features": 16, "out_channels": [8, 16, 32, 32], "intermediate_layer_idx": [0, 1, 2, 3],
                   "output_dim": 2, "activation": "exp"},
}  # fmt: skip


@pytest.fixture()
def model() -> VGGTReconstruction:
    torch.manual_seed(0)
    m = build_model(TINY)
    with torch.no_grad():  # make the special tokens matter
        m.aggregator.camera_token.normal_()
        m.aggregator.register_token.normal_()
    return m


def _loss(out: dict) -> torch.Tensor:
    return sum(out[k].float().mean() for k in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"))


def test_shapes_finite_and_gradients(model: VGGTReconstruction) -> None:
    images = torch.rand(2, 3, 28, 42)
    out = model(images, return_tokens=True)
    _loss(out).backward()
    b, s, h, w = 1, 2, 28, 42
    assert out["pose_enc"].shape == (b, s, 9)
    assert len(out["pose_enc_list"]) == 4 and all(p.shape == (b, s, 9) for p in out["pose_enc_list"])
    assert out["depth"].shape == (b, s, h, w, 1) and out["depth_conf"].shape == (b, s, h, w)
    assert out["world_points"].shape == (b, s, h, w, 3) and out["world_points_conf"].shape == (b, s, h, w)
    assert len(out["aggregated_tokens"]) == 4
    assert all(t.shape == (b, s, 5 + 2 * 3, 64) for t in out["aggregated_tokens"])
    assert int(out["patch_start_idx"]) == 5
    for k in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert torch.isfinite(out[k]).all(), k
    assert (out["depth"] > 0).all() and (out["depth_conf"] > 1).all()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert no_grad == []
    assert model.aggregator.patch_embed.mask_token.grad is None  # unused, frozen as in VGGT


def test_forward_backward_under_a_second(model: VGGTReconstruction) -> None:
    """2 frames, forward + backward, after one warm-up call (the first call pays one-off kernel set-up)."""
    images = torch.rand(2, 3, 28, 42)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is shared; one thread gives a stable number
    try:
        _loss(model(images)).backward()
        start = time.perf_counter()
        _loss(model(images)).backward()
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 1.0, f"tiny forward + backward took {elapsed:.2f}s"


def test_batched_input_equals_per_sequence(model: VGGTReconstruction) -> None:
    model.eval()
    seqs = torch.rand(2, 3, 3, 28, 28)
    with torch.no_grad():
        both = model(seqs)
        one = model(seqs[1])
    for k in ("pose_enc", "depth", "world_points"):
        assert torch.allclose(both[k][1:], one[k], atol=1e-5), k


def test_forward_tokens_layout_matches_own_patch_embed(model: VGGTReconstruction) -> None:
    """Vid-LLM layout: the encoder runs outside and the aggregator gets patch tokens."""
    model.eval()
    agg = model.aggregator
    images = torch.rand(1, 2, 3, 28, 42)
    with torch.no_grad():
        ref, start = agg(images)
        patch_tokens = agg.encode_images(images)
        outside = Aggregator(embed_dim=32, depth=4, num_heads=2, patch_embed=None)
        outside.load_state_dict({k: v for k, v in agg.state_dict().items() if not k.startswith("patch_embed.")})
        got, start2 = outside.forward_tokens(patch_tokens, (2, 3))
    assert start == start2 == 5
    assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    assert set(outside.state_dict()) == {k for k in agg.state_dict() if not k.startswith("patch_embed.")}
    with pytest.raises(RuntimeError, match="no patch_embed"):
        outside(images)


def test_frame_0_uses_first_token_slot(model: VGGTReconstruction) -> None:
    """Frame 0 is the reference frame: swapping frames changes its tokens, reordering later frames does not."""
    model.eval()
    images = torch.rand(1, 3, 3, 28, 28)
    with torch.no_grad():
        ref = model(images)["depth"]
        later_swapped = model(images[:, [0, 2, 1]])["depth"]
    assert torch.allclose(ref[:, 0], later_swapped[:, 0], atol=1e-5)
    assert torch.allclose(ref[:, 1], later_swapped[:, 2], atol=1e-5)


def test_dpt_chunking_and_feature_only(model: VGGTReconstruction) -> None:
    model.eval()
    images = torch.rand(1, 3, 3, 28, 28)
    with torch.no_grad():
        tokens, start = model.aggregator(images)
        head = model.depth_head
        full = head(tokens, (28, 28), start, frames_chunk_size=None)
        chunked = head(tokens, (28, 28), start, frames_chunk_size=2)
        feats_head = DPTHead(64, features=16, out_channels=[8, 16, 32, 32], intermediate_layer_idx=[0, 1, 2, 3],
                             feature_only=True, down_ratio=2, pos_embed=False)  # fmt: skip
        feats = feats_head(tokens, (28, 28), start, frames_chunk_size=1)
    assert torch.allclose(full[0], chunked[0], atol=1e-6) and torch.allclose(full[1], chunked[1], atol=1e-6)
    assert feats.shape == (1, 3, 16, 14, 14)
    assert not hasattr(feats_head.scratch, "output_conv2")


def test_bf16_autocast_heads_stay_fp32(model: VGGTReconstruction) -> None:
    model.eval()
    images = torch.rand(1, 2, 3, 28, 28)
    with torch.no_grad():
        ref = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(images)
    for k in ("pose_enc", "depth", "world_points"):
        assert low[k].dtype == torch.float32, k
        assert torch.isfinite(low[k]).all()
        assert (low[k] - ref[k]).abs().max() <= 5e-2 * max(1.0, ref[k].abs().max().item()), k


def test_encoder_intermediates() -> None:
    enc = DinoEncoder(img_size=28, embed_dim=32, depth=3, num_heads=2).eval()
    x = torch.randn(2, 3, 28, 42)
    with torch.no_grad():
        out = enc(x, intermediate_layers=[0, 2])
    assert [t.shape for t in out["intermediates"]] == [(2, 6, 32)] * 2
    assert torch.allclose(out["intermediates"][1], out["x_norm_patchtokens"])
    assert out["x_prenorm"].shape == (2, 1 + 4 + 6, 32)
    with pytest.raises(ValueError, match="out of range"):
        enc(x, intermediate_layers=[3])
