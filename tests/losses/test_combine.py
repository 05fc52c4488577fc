"""Stage-2 combiner (Eq. 8)."""

import pytest
import torch

from vidllm_core.losses import stage2_loss


def test_stage2_loss_weighted_sum_and_groups():
    parts = {k: torch.tensor(v, requires_grad=True) for k, v in
             {"camera": 1.0, "depth": 2.0, "answer_ce": 3.0, "metric_depth": 0.5}.items()}
    # 5 * 1 + 2 + 3 + 0.5 (grounding weighted but absent; point absent)
    total, logged = stage2_loss(parts, {"camera": 5.0, "grounding": 2.0})
    assert total.item() == pytest.approx(10.5)
    assert logged["camera"].item() == 1.0  # unweighted term
    assert logged["recon"].item() == pytest.approx(7.0)
    assert logged["vl"].item() == pytest.approx(3.0)
    assert logged["md"].item() == pytest.approx(0.5)
    total.backward()
    assert parts["camera"].grad.item() == 5.0 and parts["answer_ce"].grad.item() == 1.0


def test_stage2_loss_rejects_bad_names_and_weights():
    one = {"depth": torch.tensor(1.0)}
    with pytest.raises(ValueError, match="unknown loss weight"):
        stage2_loss(one, {"dpeth": 1.0})
    with pytest.raises(ValueError, match="unknown loss term"):
        stage2_loss({"foo": torch.tensor(1.0)}, {})
    with pytest.raises(ValueError):
        stage2_loss(one, {"depth": -1.0})
    with pytest.raises(ValueError):
        stage2_loss(one, {"depth": float("nan")})
    with pytest.raises(ValueError):
        stage2_loss({}, {})


def test_half_precision_inputs_are_computed_in_float32():
    from vidllm_core.losses import camera_loss, depth_loss, distillation_loss, grounding_loss, metric_depth_loss

    b = torch.bfloat16
    x = (torch.rand(1, 2, 12, 12) + 0.5).to(b)
    valid = torch.ones(1, 2, 12, 12, dtype=torch.bool)
    outs = [
        depth_loss(x, x + 1, x * 1.1, valid, min_valid=1)[0],
        metric_depth_loss(x[0], x[0] * 1.2, valid[0], 0.5, 1e-6),
        camera_loss([torch.randn(2, 3, 9).to(b)], torch.randn(2, 3, 9))[0],
        grounding_loss(torch.rand(2, 4, 6).to(b), torch.randn(2, 4).to(b), [torch.rand(2, 6), torch.zeros(0, 6)])[0],
        distillation_loss(*(torch.randn(2, 6, 8).to(b) for _ in range(4)), 0.1)[0],
    ]
    for out in outs:
        assert out.dtype == torch.float32 and torch.isfinite(out)
