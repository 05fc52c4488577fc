"""Answer-token cross-entropy and prompt masking."""

import math

import pytest
import torch
import torch.nn.functional as F

from vidllm_core.losses import IGNORE_INDEX, answer_cross_entropy, mask_prompt_labels


def test_answer_cross_entropy_by_hand():
    # L = 3, V = 2, labels [-100, 0, 1]. After the shift, position 0 predicts 0 from logits [0, 0] -> ln 2,
    # position 1 predicts 1 from logits [0, ln 3] -> p = 3/4 -> ln(4/3). Position 2's logits are unused.
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)], [9.0, -9.0]]], dtype=torch.float64)
    labels = torch.tensor([[IGNORE_INDEX, 0, 1]])
    assert answer_cross_entropy(logits, labels).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, abs=1e-6)


def test_answer_cross_entropy_token_mean_matches_loop():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :4] = IGNORE_INDEX
    labels[2, 5:] = IGNORE_INDEX
    terms = [
        -F.log_softmax(logits[b, i], -1)[labels[b, i + 1]]
        for b in range(3)
        for i in range(6)
        if labels[b, i + 1] != IGNORE_INDEX
    ]
    assert answer_cross_entropy(logits, labels).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)


def test_answer_cross_entropy_all_ignored_is_zero_and_differentiable():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    loss = answer_cross_entropy(logits, torch.full((2, 4), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_answer_cross_entropy_ignores_prompt_logits():
    logits = torch.randn(1, 5, 6)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 2, 4]])
    a = answer_cross_entropy(logits, labels)
    logits[0, :2] = 1e3 * torch.randn(2, 6)  # positions 0, 1 predict masked labels
    logits[0, 4] = 5.0  # the last position predicts nothing
    assert answer_cross_entropy(logits, labels).item() == pytest.approx(a.item(), rel=1e-6)


def test_mask_prompt_labels():
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 9, 1]])
    labels = mask_prompt_labels(ids, [2, 3], pad_id=0)
    assert labels.tolist() == [[-100, -100, 7, 8, -100, -100], [-100, -100, -100, 8, 9, 1]]
    # pad id == eos id: the attention mask keeps the real eos (id 0 at position 4) as a label.
    attn = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    labels = mask_prompt_labels(ids, torch.tensor([2, 3]), pad_id=0, attention_mask=attn)
    assert labels.tolist() == [[-100, -100, 7, 8, 0, -100], [-100, -100, -100, 8, 9, 1]]
    with pytest.raises(ValueError):
        mask_prompt_labels(ids, [1], pad_id=0)
