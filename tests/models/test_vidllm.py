"""The assembled Vid-LLM network: shapes, one-way gradient (Sec. 3.4), checkpoints, VGGT initialisation."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.fixtures import TINY_A, VGGT
from tests.fixtures.tiny_a_weights import tiny_a_weights
from vidllm_core.config import VidLLMConfig
from vidllm_core.convert.vggt import read_key_shapes_tsv, vggt_1b_model_config
from vidllm_core.convert.vidllm_from_vggt import check_vggt_keys, init_from_vggt, vidllm_config_from_vggt
from vidllm_core.errors import CheckpointError
from vidllm_core.models.vidllm import VidLLM


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return VidLLM(VidLLMConfig.from_name("tiny"))


def test_forward_shapes_and_finiteness(tiny_model):
    images = torch.rand(1, 2, 3, 42, 56)
    out = tiny_model(images)
    assert out["pose_enc"].shape == (1, 2, 9)
    assert len(out["pose_enc_list"]) == tiny_model.config.camera_head.num_iterations
    assert out["depth"].shape == (1, 2, 42, 56, 1) and out["depth_conf"].shape == (1, 2, 42, 56)
    assert out["metric_depth"].shape == (1, 2, 42, 56)
    assert out["tokens_lang"].shape == (1, 2, 12, 32) and out["tokens_geom"].shape == (1, 2, 12, 32)
    for key in ("pose_enc", "depth", "depth_conf", "metric_depth", "tokens_lang"):
        assert torch.isfinite(out[key]).all(), key
    assert (out["metric_depth"] > 0).all()


def test_reconstruct_is_metric_and_consistent(tiny_model):
    tiny_model.eval()
    rec = tiny_model.reconstruct(torch.rand(3, 3, 42, 56))
    assert rec.metric is True and rec.scale > 0
    assert rec.depth.shape == (3, 42, 56) and rec.extrinsic.shape == (3, 3, 4)
    # world points are the aligned depth unprojected with the aligned cameras: back in camera 0 they have z = depth
    rot, t = rec.extrinsic[0, :, :3], rec.extrinsic[0, :, 3]
    cam0 = rec.world_points[0] @ rot.T + t
    torch.testing.assert_close(cam0[..., 2], rec.depth[0], rtol=1e-4, atol=1e-5)


def test_one_way_gradient(tiny_model):
    """A loss on the language stream reaches CTA + language-side modules, never the reconstruction model."""
    tiny_model.train()
    tiny_model.zero_grad()
    out = tiny_model(torch.rand(1, 2, 3, 42, 56))
    geometry = tiny_model.geometry(out)
    tokens_3d, _ = tiny_model.patch_tokens_3d(out["tokens_lang"][0], geometry)
    tokens_3d.pow(2).mean().backward()

    def grad_norm(module):
        grads = [p.grad.abs().sum() for p in module.parameters() if p.grad is not None]
        return float(sum(grads)) if grads else 0.0

    assert grad_norm(tiny_model.adapter) > 0
    assert grad_norm(tiny_model.patch3d) > 0
    assert grad_norm(tiny_model.encoder) > 0
    assert grad_norm(tiny_model.adapter.bridge_from_geom) > 0  # geometry stream feeds the bridge tokens
    for name in ("reconstruction", "metric_depth"):
        assert grad_norm(getattr(tiny_model, name)) == 0.0, name
    tiny_model.eval()


def test_geometry_loss_reaches_cta_and_reconstruction(tiny_model):
    tiny_model.train()
    tiny_model.zero_grad()
    out = tiny_model(torch.rand(1, 2, 3, 42, 56))
    (out["depth"].mean() + out["pose_enc"].pow(2).mean()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.adapter.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.reconstruction.parameters())
    tiny_model.eval()


def test_save_and_load_round_trip(tiny_model, tmp_path):
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = VidLLM.from_pretrained(tmp_path)
    images = torch.rand(1, 2, 3, 42, 56)
    with torch.no_grad():
        a, b = tiny_model(images), loaded(images)
    assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["metric_depth"], b["metric_depth"])


def test_config_weights_mismatch_is_one_clear_error(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["encoder"]["embed_dim"] = 64
    cfg["encoder"]["num_heads"] = 4
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match the model config"):
        VidLLM.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        VidLLM.from_pretrained(tmp_path / "nope")


def test_initialised_from_vggt_reproduces_vggt():
    """Sec. 3.4 start point: VGGT weights + identity CTA give VGGT's outputs on fixture tiny_a."""
    model_cfg = json.loads((TINY_A / "config.json").read_text())["model"]
    cfg = vidllm_config_from_vggt(model_cfg, base=VidLLMConfig.from_name("tiny"))
    torch.manual_seed(0)
    model = VidLLM(cfg)
    report = init_from_vggt(model, tiny_a_weights())
    assert report.ok and not report.dropped
    images = load_file(str(TINY_A / "inputs.safetensors"))["images"]
    ref = load_file(str(TINY_A / "outputs.safetensors"))
    with torch.no_grad():
        out = model.eval()(images)
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        tol = 1e-4 * max(1.0, ref[key].abs().max().item())
        assert (out[key] - ref[key]).abs().max().item() <= tol, key


def test_paper_preset_consumes_every_vggt_1b_key():
    key_shapes = read_key_shapes_tsv(VGGT / "vggt_1b_keys.tsv")
    cfg = vidllm_config_from_vggt(vggt_1b_model_config(), base=VidLLMConfig.from_name("paper"))
    assert cfg.encoder == VidLLMConfig.from_name("paper").encoder
    with torch.device("meta"):
        model = VidLLM(VidLLMConfig.from_name("paper"))
    report = check_vggt_keys(model, key_shapes)
    assert report.ok, report.problems()
    assert len(report.dropped) == 394 and all(k.startswith("track_head.") for k in report.dropped)
    assert len(report.matched) == len(key_shapes) - 394
