"""Parity of VGGTReconstruction with the official VGGT outputs on fixture tiny_a (float32, <= 1e-4 relative)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vidllm_core.convert.vggt import build_from_official, convert_official
from vidllm_core.geometry.pose_encoding import pose_encoding_to_extri_intri
from vidllm_core.geometry.unproject import unproject_depth_to_world
from vidllm_core.heads import dpt
from vidllm_core.models.aggregator import IMAGENET_MEAN, IMAGENET_STD

TOL = 1e-4


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max|x - ref| / max(1, max|ref|): the fixture README's criterion (pass when <= 1e-4)."""
    return (x.float() - ref.float()).abs().max().item() / max(1.0, ref.abs().max().item())


def _all_outputs(model: torch.nn.Module, fx: dict[str, Any]) -> dict[str, torch.Tensor]:
    images = fx["inputs"]["images"]
    h, w = images.shape[-2:]
    with torch.no_grad():
        out = model(images, return_tokens=True)
        got: dict[str, torch.Tensor] = {
            k: out[k] for k in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
        }
        got.update({f"pose_enc_list.{i}": p for i, p in enumerate(out["pose_enc_list"])})
        got.update({f"aggregated_tokens.{i}": t for i, t in enumerate(out["aggregated_tokens"])})
        got["patch_start_idx"] = out["patch_start_idx"].reshape(1)
        extrinsic, intrinsic = pose_encoding_to_extri_intri(out["pose_enc"], (h, w))
        got["extrinsic"], got["intrinsic"] = extrinsic, intrinsic
        got["unprojected_world_points"] = unproject_depth_to_world(out["depth"][0], extrinsic[0], intrinsic[0])
        encoder = model.aggregator.patch_embed
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        for prefix, imgs in (("dinov2", images), ("dinov2_extra", fx["inputs"]["dinov2_extra_images"])):
            x = (imgs - mean) / std
            enc = encoder(x)
            got[f"{prefix}.input_normalized"] = x
            got[f"{prefix}.interpolated_pos_embed"] = encoder.interpolate_pos_encoding(*x.shape[-2:])
            for k in ("x_norm_clstoken", "x_norm_patchtokens", "x_norm_regtokens", "x_prenorm"):
                got[f"{prefix}.{k}"] = enc[k]
    return got


@pytest.fixture(scope="module")
def official(tiny_a: dict[str, Any]) -> torch.nn.Module:
    return build_from_official(tiny_a["config"], tiny_a["weights"])


def test_every_fixture_output_matches(official: torch.nn.Module, tiny_a: dict[str, Any]) -> None:
    ref = tiny_a["outputs"]
    got = _all_outputs(official, tiny_a)
    assert set(ref) <= set(got), f"outputs not produced: {sorted(set(ref) - set(got))}"
    failures = []
    for key, r in ref.items():
        assert tuple(got[key].shape) == tuple(r.shape), key
        if r.dtype == torch.int64:
            assert torch.equal(got[key].to(torch.int64), r), key
            continue
        err = rel_err(got[key], r)
        if err > TOL:
            failures.append(f"{key}: {err:.2e}")
    assert not failures, failures


def test_track_head_keys_are_dropped_and_reported(tiny_a: dict[str, Any]) -> None:
    weights = dict(tiny_a["weights"])
    weights["track_head.fake.weight"] = torch.zeros(3)
    _, report = convert_official(tiny_a["config"], weights)
    assert report.dropped == ["track_head.fake.weight"]
    assert len(report.matched) == len(tiny_a["weights"])


def _worst(model: torch.nn.Module, fx: dict[str, Any]) -> float:
    with torch.no_grad():
        got = model(fx["inputs"]["images"])
    keys = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
    return max(rel_err(got[k], fx["outputs"][k]) for k in keys)


def test_parity_check_catches_rcu_skip_without_relu(tiny_a: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The official unit adds relu(x) on the skip; a textbook unit (adds x) must fail the criterion."""

    def textbook(self: dpt.ResidualConvUnit, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(torch.relu(x)))) + x

    monkeypatch.setattr(dpt.ResidualConvUnit, "forward", textbook)
    assert _worst(build_from_official(tiny_a["config"], tiny_a["weights"]), tiny_a) > 1e-2


def test_parity_check_catches_swapped_token_slots(tiny_a: dict[str, Any]) -> None:
    weights = dict(tiny_a["weights"])
    weights["aggregator.camera_token"] = weights["aggregator.camera_token"].flip(1).contiguous()
    assert _worst(build_from_official(tiny_a["config"], weights), tiny_a) > 1e-2


def test_parity_check_catches_pos_embed_without_antialias(tiny_a: dict[str, Any]) -> None:
    model = build_from_official(tiny_a["config"], tiny_a["weights"])
    model.aggregator.patch_embed.interpolate_antialias = False
    assert _worst(model, tiny_a) > 1e-3
