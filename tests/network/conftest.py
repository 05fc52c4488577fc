"""Shared fixtures of the network tests: the official VGGT tiny fixture, loaded once per session."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from tests.fixtures import TINY_A
from tests.fixtures.tiny_a_weights import tiny_a_weights


@pytest.fixture(scope="session")
def tiny_a() -> dict[str, Any]:
    from safetensors.torch import load_file

    return {
        "config": json.loads((TINY_A / "config.json").read_text())["model"],
        "weights": tiny_a_weights(),
        "inputs": load_file(str(TINY_A / "inputs.safetensors")),
        "outputs": load_file(str(TINY_A / "outputs.safetensors")),
    }


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """These tensors are tiny: one thread avoids oversubscribing the shared 2-core CI machine (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
