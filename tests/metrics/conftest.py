"""Shared helpers for the metric tests: the fixture directory in ../shared (sibling of the repo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "metrics"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"metric fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def load_json(fixture_dir: Path):
    def _load(name: str) -> dict:
        return json.loads((fixture_dir / name).read_text(encoding="utf-8"))

    return _load
