"""Stage-2 joint loss L_joint = L_recon-task + L_VL-task + L_MD: Vid-LLM paper Sec. 3.4, Eq. 8, with config weights.

The one-way gradient of Sec. 3.4 (L_VL-task does not update the reconstruction model) is enforced by the model,
not here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["STAGE2_TERMS", "stage2_loss"]

# Term name -> the group of Eq. 8 it belongs to.
STAGE2_TERMS: Mapping[str, str] = {
    "camera": "recon",
    "depth": "recon",
    "point": "recon",
    "answer_ce": "vl",
    "grounding": "vl",
    "metric_depth": "md",
}


def stage2_loss(parts_by_term: Mapping[str, Tensor], weights: Mapping[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of the Stage-2 terms present in this batch (Eq. 8).

    Args:
        parts_by_term: term name (one of STAGE2_TERMS) -> scalar loss; absent terms are skipped (e.g. no
            grounding loss in a QA batch).
        weights: term name -> non-negative finite weight, from the config; a term without a weight counts with 1
            (Eq. 8 is an unweighted sum; VGGT's preset weights camera 5.0). Weights may name absent terms.

    Returns:
        (total, {name: unweighted value (detached) for each present term, plus "recon", "vl", "md" for the
        weighted group sums that are present}).

    Raises:
        ValueError: an unknown term or weight name, a negative or non-finite weight, a non-scalar term, or no term.
    """
    unknown_w = sorted(set(weights) - set(STAGE2_TERMS))
    if unknown_w:
        raise ValueError(f"unknown loss weight name(s) {unknown_w}; known: {sorted(STAGE2_TERMS)}")
    unknown_t = sorted(set(parts_by_term) - set(STAGE2_TERMS))
    if unknown_t:
        raise ValueError(f"unknown loss term(s) {unknown_t}; known: {sorted(STAGE2_TERMS)}")
    for name, value in weights.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(f"loss weight {name!r} must be a non-negative finite number, got {value!r}")
    if not parts_by_term:
        raise ValueError("no loss term given")
    groups: dict[str, Tensor] = {}
    logged: dict[str, Tensor] = {}
    for name, value in parts_by_term.items():
        if value.numel() != 1:
            raise ValueError(f"loss term {name!r} must be a scalar, got shape {tuple(value.shape)}")
        value = value.reshape(())
        weighted = float(weights.get(name, 1.0)) * value
        group = STAGE2_TERMS[name]
        groups[group] = groups[group] + weighted if group in groups else weighted
        logged[name] = value.detach()
    total = torch.stack([g.to(torch.float32) for g in groups.values()]).sum()
    for group, value in groups.items():
        logged[group] = value.detach()
    return total, logged
