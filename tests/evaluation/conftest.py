"""Shared fixtures of the evaluation tests."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """On the shared 2-core machine the tiny model's forward is ~50x slower with 2 contending intra-op threads
    (measured 2.5 s vs 0.05 s for 2 frames); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
