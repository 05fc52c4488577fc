"""Shared helpers for the metric tests: the official evaluators' expected values in tests/fixtures/metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures import METRICS


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return METRICS


@pytest.fixture(scope="session")
def load_json(fixture_dir: Path):
    def _load(name: str) -> dict:
        return json.loads((fixture_dir / name).read_text(encoding="utf-8"))

    return _load
