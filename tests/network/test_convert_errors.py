"""Bad checkpoints and configs give one clear CheckpointError / ConfigError naming the problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from vidllm_core.convert.vggt import build_from_official, load_official_checkpoint
from vidllm_core.errors import CheckpointError, ConfigError


def test_unexpected_missing_and_mismatched_keys(tiny_a: dict[str, Any]) -> None:
    cfg, weights = tiny_a["config"], tiny_a["weights"]
    extra = dict(weights, **{"aggregator.bogus": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="unexpected keys: aggregator.bogus"):
        build_from_official(cfg, extra)
    missing = {k: v for k, v in weights.items() if k != "camera_head.token_norm.weight"}
    with pytest.raises(CheckpointError, match="missing keys: camera_head.token_norm.weight"):
        build_from_official(cfg, missing)
    wrong = dict(weights, **{"depth_head.norm.weight": torch.zeros(7)})
    with pytest.raises(CheckpointError, match="depth_head.norm.weight checkpoint \\[7\\] vs model \\[128\\]"):
        build_from_official(cfg, wrong)
    no_points = copy.deepcopy(cfg)
    no_points["point_head"] = None
    with pytest.raises(CheckpointError, match="unexpected keys: point_head"):
        build_from_official(no_points, weights)
    kept = {k: v for k, v in weights.items() if not k.startswith("point_head.")}
    out = build_from_official(no_points, kept)(tiny_a["inputs"]["images"])
    assert "world_points" not in out and "depth" in out


def test_bad_config(tiny_a: dict[str, Any]) -> None:
    cfg = copy.deepcopy(tiny_a["config"])
    cfg["camera_head"]["pose_encoding_type"] = "relT_quaR"
    with pytest.raises(ConfigError, match="pose_encoding_type"):
        build_from_official(cfg, tiny_a["weights"])
    cfg = copy.deepcopy(tiny_a["config"])
    cfg["aggregator"]["typo"] = 1
    with pytest.raises(ConfigError, match="typo"):
        build_from_official(cfg, tiny_a["weights"])


def test_load_official_checkpoint_formats_and_errors(tiny_a: dict[str, Any], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weights = tiny_a["weights"]
    pt_dir = tmp_path / "pt"
    pt_dir.mkdir()
    torch.save(weights, pt_dir / "model.pt")
    st_dir = tmp_path / "st"
    st_dir.mkdir()
    save_file(weights, str(st_dir / "model.safetensors"))
    for path in (pt_dir, pt_dir / "model.pt", st_dir, st_dir / "model.safetensors"):
        sd = load_official_checkpoint(path)
        assert sd.keys() == weights.keys() and all(torch.equal(sd[k], weights[k]) for k in weights)

    with pytest.raises(CheckpointError, match="not found"):
        load_official_checkpoint(tmp_path / "missing.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors or model.pt"):
        load_official_checkpoint(empty)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_official_checkpoint(bad)
    assert "\n" not in str(err.value) and "cannot read checkpoint" in str(err.value)
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes((st_dir / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_official_checkpoint(truncated)
    not_sd = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_sd)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_official_checkpoint(not_sd)
