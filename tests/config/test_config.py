"""Config presets, JSON round trip and validation (vidllm_core/config.py)."""

import json

import pytest

from vidllm_core.config import PRESETS, VidLLMConfig
from vidllm_core.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_json_round_trip(name, tmp_path):
    cfg = VidLLMConfig.from_name(name)
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert VidLLMConfig.from_file(tmp_path) == cfg


def test_paper_preset_matches_section_4_1():
    cfg = VidLLMConfig.from_name("paper")
    enc = cfg.encoder
    assert (enc.depth, enc.embed_dim, enc.num_heads, enc.patch_size, enc.num_register_tokens) == (24, 1024, 16, 14, 4)
    assert cfg.adapter.num_bridge_tokens == 16 and cfg.adapter.variant == "bridge"
    assert (cfg.input.num_frames, cfg.input.image_size) == (32, 518)
    assert cfg.aggregator.depth == 24 and cfg.camera_head.trunk_depth == 4


def test_unknown_key_is_rejected():
    data = VidLLMConfig.from_name("tiny").to_dict()
    data["encoder"]["embed_dims"] = 3
    with pytest.raises(ConfigError, match="unknown key.*embed_dims"):
        VidLLMConfig.from_dict(data)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("encoder", "depth"), "2", "expected an integer"),
        (("adapter", "variant"), "bridges", "adapter.variant"),
        (("encoder", "intermediate_layers"), [0, 1, 2, 9], "intermediate_layers"),
        (("input", "image_size"), 57, "multiple of patch"),
    ],
)
def test_invalid_values_are_rejected(path, value, message):
    data = VidLLMConfig.from_name("tiny").to_dict()
    data[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=message):
        VidLLMConfig.from_dict(data)


def test_optional_components_round_trip_as_null():
    cfg = VidLLMConfig.from_name("tiny").replace(metric_depth=None)
    data = json.loads(cfg.to_json())
    assert data["metric_depth"] is None
    assert VidLLMConfig.from_dict(data).metric_depth is None


def test_malformed_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        VidLLMConfig.from_file(tmp_path)
