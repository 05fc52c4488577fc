"""The VGGT-1B config builds (on the meta device) a model that consumes every key and shape of the real checkpoint."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures import VGGT
from vidllm_core.convert.vggt import VGGT_1B_MODEL_CONFIG, build_model, check_official_keys, read_key_shapes_tsv


@pytest.fixture(scope="module")
def key_shapes() -> dict[str, tuple[int, ...]]:
    return read_key_shapes_tsv(VGGT / "vggt_1b_keys.tsv")


def test_vggt_1b_keys_and_shapes_all_consumed(key_shapes: dict[str, tuple[int, ...]]) -> None:
    with torch.device("meta"):
        model = build_model(VGGT_1B_MODEL_CONFIG)
    report = check_official_keys(model, key_shapes)
    assert report.ok, report.problems()
    assert len(key_shapes) == 1797
    assert len(report.dropped) == 394 and all(k.startswith("track_head.") for k in report.dropped)
    assert len(report.matched) == 1797 - 394
    assert sorted(report.matched) == sorted(model.state_dict())
    # same order as the official state_dict (track head last)
    assert report.matched == list(model.state_dict())
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 1_256_537_516 - 65_941_396


def test_key_report_names_problems(key_shapes: dict[str, tuple[int, ...]]) -> None:
    with torch.device("meta"):
        model = build_model(VGGT_1B_MODEL_CONFIG)
    shapes = dict(key_shapes)
    shapes.pop("camera_head.trunk_norm.bias")
    shapes["aggregator.extra_thing"] = (3,)
    shapes["depth_head.norm.weight"] = (1024,)
    report = check_official_keys(model, shapes)
    assert not report.ok
    assert report.missing == ["camera_head.trunk_norm.bias"]
    assert report.unexpected == ["aggregator.extra_thing"]
    assert report.mismatched == [("depth_head.norm.weight", (1024,), (2048,))]
    text = report.problems()
    assert "camera_head.trunk_norm.bias" in text and "aggregator.extra_thing" in text and "depth_head.norm.weight" in text
