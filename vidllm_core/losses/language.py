"""Instruction-following cross-entropy of L_VL-task: Vid-LLM paper Sec. 3.4, Eq. 8 (answer tokens only).

Named dimensions: B sequences, L tokens, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IGNORE_INDEX", "answer_cross_entropy", "mask_prompt_labels"]

IGNORE_INDEX = -100


def answer_cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Next-token cross-entropy on the answer tokens, as Hugging Face causal LMs compute it.

    Position t predicts labels[t + 1] (the shift happens here: pass labels aligned with input_ids). The mean is
    over every label != ignore_index in the batch (token-level, not per sequence). The caller masks the prompt,
    the 3D placeholder tokens and the padding with `ignore_index` (see `mask_prompt_labels`). A batch without any
    answer token gives 0 (attached to the graph) instead of NaN.

    Args:
        logits: [B, L, V]. labels: [B, L] int64, ignore_index on prompt / pad positions.

    Returns:
        Scalar (computed in float32 whatever the logits dtype).
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits [B, L, V] and labels [B, L] expected, got {tuple(logits.shape)}, {tuple(labels.shape)}")
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1).to(torch.long)
    if not bool((shift_labels != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=ignore_index, reduction="mean")


def mask_prompt_labels(
    input_ids: Tensor,
    prompt_lengths: Tensor | Sequence[int],
    pad_id: int | None,
    attention_mask: Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Labels for `answer_cross_entropy`: a copy of input_ids with the prompt and the padding set to ignore_index.

    Sequences are right-padded: positions [0, prompt_lengths[b]) are the prompt. Padding is found from
    `attention_mask == 0` when given, else from `input_ids == pad_id` (pass the attention mask when the pad id is
    also the end-of-sequence id, which the model must learn to emit).

    Args:
        input_ids: [B, L]. prompt_lengths: [B]. pad_id: padding id or None. attention_mask: optional [B, L].

    Returns:
        labels [B, L] int64.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, L], got {tuple(input_ids.shape)}")
    lengths = torch.as_tensor(prompt_lengths, device=input_ids.device).reshape(-1)
    if lengths.numel() != input_ids.shape[0]:
        raise ValueError(f"{lengths.numel()} prompt lengths for {input_ids.shape[0]} sequences")
    if bool((lengths < 0).any()):
        raise ValueError("prompt lengths must be non-negative")
    labels = input_ids.clone().to(torch.long)
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)
    labels[pos[None, :] < lengths[:, None]] = ignore_index
    if attention_mask is not None:
        labels[attention_mask == 0] = ignore_index
    elif pad_id is not None:
        labels[input_ids == pad_id] = ignore_index
    return labels
