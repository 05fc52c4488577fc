"""The network runs on the meta device (shapes only), counting exactly the FLOPs of a real run: what
`benchmarks/flops.py` relies on to count the paper preset without allocating it. (The real run uses the math
attention kernel: the counter has no formula for CPU flash attention and would leave attention out.)"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vidllm_core.config import VidLLMConfig
from vidllm_core.models.vidllm import VidLLM


def test_meta_forward_counts_the_flops_of_a_real_forward() -> None:
    config = VidLLMConfig.from_name("tiny").replace(language=None)
    torch.manual_seed(0)
    counts, shapes = [], []
    for device in ("cpu", "meta"):
        with torch.device(device):
            model = VidLLM(config).to(device).eval().requires_grad_(False)
            images = torch.rand(1, 2, 3, 56, 56)
        counter = FlopCounterMode(display=False)
        with counter, sdpa_kernel(SDPBackend.MATH) if device == "cpu" else nullcontext():
            out = model(images)
        counts.append(counter.get_total_flops())
        shapes.append({k: tuple(v.shape) for k, v in out.items() if isinstance(v, torch.Tensor)})
    assert counts[0] == counts[1] > 0
    assert shapes[0] == shapes[1] and shapes[1]["metric_depth"] == (1, 2, 56, 56)
