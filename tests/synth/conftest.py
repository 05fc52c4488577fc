"""Shared fixtures: one small synthrooms dataset generated once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidllm_core.data.synth import SynthConfig, generate_dataset

CFG = SynthConfig(scenes=4, seed=3, frames=12, width=160, height=120, split_ratios=(0.5, 0.25, 0.25))


@pytest.fixture(scope="session")
def synth_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "out"
    generate_dataset(out, CFG)
    return out


@pytest.fixture(scope="session")
def scene_metas(synth_out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((synth_out / "scenes").glob("*/scene.json"))}
