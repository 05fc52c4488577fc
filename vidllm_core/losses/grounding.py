"""Grounding losses of L_VL-task (Vid-LLM Sec. 3.4, Eq. 8): box regression (L1 + 3D IoU) and Hungarian matching.

DETR-style set loss on axis-aligned 3D boxes [cx, cy, cz, dx, dy, dz] (centre + full sizes, metres).
Named dimensions: B batch, Q predicted queries, G ground-truth boxes, M matched pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

__all__ = [
    "DEFAULT_GROUNDING_WEIGHTS",
    "box_iou_3d",
    "box_iou_3d_pairwise",
    "box_l1_loss",
    "box_iou_loss",
    "hungarian_match",
    "grounding_loss",
    "proposal_loss",
]

DEFAULT_GROUNDING_WEIGHTS: Mapping[str, float] = {"l1": 5.0, "iou": 2.0, "objectness": 1.0}
_IOU_EPS = 1e-7


def _check_boxes(name: str, x: Tensor) -> None:
    if x.shape[-1] != 6:
        raise ValueError(f"{name} must end in 6 values [cx, cy, cz, dx, dy, dz], got {tuple(x.shape)}")


def _corners(box: Tensor) -> tuple[Tensor, Tensor]:
    """(min, max) corners [..., 3]; negative sizes are treated as 0."""
    half = box[..., 3:].clamp(min=0) / 2
    return box[..., :3] - half, box[..., :3] + half


def _iou_parts(a_min: Tensor, a_max: Tensor, b_min: Tensor, b_max: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(intersection, union, enclosing volume) for broadcast corners."""
    inter = (torch.minimum(a_max, b_max) - torch.maximum(a_min, b_min)).clamp(min=0).prod(-1)
    vol_a = (a_max - a_min).prod(-1)
    vol_b = (b_max - b_min).prod(-1)
    union = vol_a + vol_b - inter
    enclose = (torch.maximum(a_max, b_max) - torch.minimum(a_min, b_min)).prod(-1)
    return inter, union, enclose


def box_iou_3d(a: Tensor, b: Tensor, giou: bool = False) -> Tensor:
    """Element-wise axis-aligned 3D IoU (or generalised IoU) of boxes [..., 6] -> [...]; differentiable.

    IoU = inter / (union + 1e-7); GIoU = IoU - (enclosing - union) / (enclosing + 1e-7). Two zero-volume boxes give 0.
    """
    _check_boxes("a", a)
    _check_boxes("b", b)
    a_min, a_max = _corners(a)
    b_min, b_max = _corners(b)
    inter, union, enclose = _iou_parts(a_min, a_max, b_min, b_max)
    iou = inter / (union + _IOU_EPS)
    if giou:
        iou = iou - (enclose - union) / (enclose + _IOU_EPS)
    return iou


def box_iou_3d_pairwise(a: Tensor, b: Tensor, giou: bool = False) -> Tensor:
    """IoU (or GIoU) of every pair: a [Q, 6], b [G, 6] -> [Q, G]."""
    return box_iou_3d(a[:, None, :].expand(-1, b.shape[0], -1), b[None, :, :].expand(a.shape[0], -1, -1), giou)


def box_l1_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """L1 box regression on matched pairs: sum of |pred - gt| over the 6 values, averaged over the M pairs (DETR).

    Args:
        pred, gt: [M, 6]. Returns a scalar; 0 (attached) when M == 0.
    """
    _check_boxes("pred", pred)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    return (pred - gt.to(pred.dtype)).abs().sum() / pred.shape[0]


def box_iou_loss(pred: Tensor, gt: Tensor, giou: bool = False) -> Tensor:
    """1 - axis-aligned 3D IoU (or GIoU, which still gives a gradient to disjoint boxes), averaged over M pairs.

    Args:
        pred, gt: [M, 6]. Returns a scalar in [0, 1] ([0, 2] for GIoU); 0 (attached) when M == 0.
    """
    _check_boxes("pred", pred)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    return (1.0 - box_iou_3d(pred, gt.to(pred.dtype), giou)).mean()


def _weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(DEFAULT_GROUNDING_WEIGHTS)
    if weights is not None:
        unknown = sorted(set(weights) - set(out))
        if unknown:
            raise ValueError(f"unknown grounding weight(s) {unknown}; known: {sorted(out)}")
        out.update({k: float(v) for k, v in weights.items()})
    return out


@torch.no_grad()
def hungarian_match(
    pred_boxes: Tensor,
    pred_logits: Tensor,
    gt_boxes: Tensor,
    cost_objectness: float = 1.0,
    cost_l1: float = 5.0,
    cost_iou: float = 2.0,
    giou: bool = False,
) -> tuple[Tensor, Tensor]:
    """One-to-one assignment of predictions to GT boxes minimising (scipy `linear_sum_assignment`, no gradient)

        cost[q, g] = -cost_objectness * sigmoid(logit_q) + cost_l1 * ||box_q - gt_g||_1 - cost_iou * IoU(box_q, gt_g).

    Args:
        pred_boxes: [Q, 6]. pred_logits: [Q] objectness logits. gt_boxes: [G, 6].

    Returns:
        (pred_idx [K], gt_idx [K]) int64 on pred_boxes' device, K = min(Q, G), sorted by pred_idx.
    """
    _check_boxes("pred_boxes", pred_boxes)
    _check_boxes("gt_boxes", gt_boxes)
    if pred_logits.shape != pred_boxes.shape[:1]:
        raise ValueError(f"pred_logits {tuple(pred_logits.shape)} must be [Q] for pred_boxes {tuple(pred_boxes.shape)}")
    dev = pred_boxes.device
    q, g = pred_boxes.shape[0], gt_boxes.shape[0]
    if q == 0 or g == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty.clone()
    pb = pred_boxes.detach().double()
    gb = gt_boxes.detach().to(pb)
    cost = (
        -cost_objectness * torch.sigmoid(pred_logits.detach().double())[:, None]
        + cost_l1 * torch.cdist(pb, gb, p=1)
        - cost_iou * box_iou_3d_pairwise(pb, gb, giou)
    )
    cost_np = np.nan_to_num(cost.cpu().numpy(), nan=1e9, posinf=1e9, neginf=-1e9)
    rows, cols = linear_sum_assignment(cost_np)
    return torch.as_tensor(rows, dtype=torch.long, device=dev), torch.as_tensor(cols, dtype=torch.long, device=dev)


def grounding_loss(
    pred_boxes: Tensor,
    pred_logits: Tensor,
    gt_boxes: Sequence[Tensor],
    weights: Mapping[str, float] | None = None,
    giou: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """DETR-style grounding loss: Hungarian matching per item, then matched L1 + (1 - IoU) and objectness BCE.

    The same weights serve as matching costs and loss coefficients (keys "l1", "iou", "objectness"; defaults
    5 / 2 / 1 as in DETR; unknown keys raise ValueError). L1 and IoU are averaged over all matched pairs of the
    batch; the binary cross-entropy is averaged over all B * Q queries, target 1 for matched queries and 0 for the
    rest. An item with no target box (Multi3DRefer zero-target queries) makes all its queries negatives.

    Args:
        pred_boxes: [B, Q, 6]. pred_logits: [B, Q]. gt_boxes: B tensors [G_b, 6] (G_b may be 0).

    Returns:
        (total, {"l1", "iou", "objectness": unweighted, detached}).
    """
    _check_boxes("pred_boxes", pred_boxes)
    if pred_boxes.dim() != 3 or pred_logits.shape != pred_boxes.shape[:2]:
        raise ValueError(f"pred_boxes [B, Q, 6] and pred_logits [B, Q] expected, got {tuple(pred_boxes.shape)}, "
                         f"{tuple(pred_logits.shape)}")
    if len(gt_boxes) != pred_boxes.shape[0]:
        raise ValueError(f"{len(gt_boxes)} GT box sets for a batch of {pred_boxes.shape[0]}")
    w = _weights(weights)
    if pred_boxes.dtype in (torch.float16, torch.bfloat16):
        pred_boxes, pred_logits = pred_boxes.float(), pred_logits.float()
    targets = torch.zeros_like(pred_logits)
    matched_pred, matched_gt = [], []
    for b, gt in enumerate(gt_boxes):
        gt = gt.to(device=pred_boxes.device, dtype=pred_boxes.dtype).reshape(-1, 6)
        pi, gi = hungarian_match(pred_boxes[b], pred_logits[b], gt, w["objectness"], w["l1"], w["iou"], giou)
        targets[b, pi] = 1.0
        matched_pred.append(pred_boxes[b, pi])
        matched_gt.append(gt[gi])
    mp, mg = torch.cat(matched_pred), torch.cat(matched_gt)
    l1 = box_l1_loss(mp, mg)
    iou = box_iou_loss(mp, mg, giou)
    obj = F.binary_cross_entropy_with_logits(pred_logits, targets)
    total = w["l1"] * l1 + w["iou"] * iou + w["objectness"] * obj
    return total, {"l1": l1.detach(), "iou": iou.detach(), "objectness": obj.detach()}


def proposal_loss(logits: Sequence[Tensor], proposals: Sequence[Tensor], gt_boxes: Sequence[Tensor]
                  ) -> tuple[Tensor, dict[str, Tensor]]:
    """Proposal-scorer loss: for each GT box, cross-entropy over the item's proposals with the proposal of highest
    IoU as the target (the scorer learns to pick it), plus a binary cross-entropy that calibrates the scores for
    the Multi3DRefer threshold (those best proposals positive, all others negative; every proposal negative for a
    zero-target item).

    Args:
        logits: B tensors [P_b]. proposals: B tensors [P_b, 6]. gt_boxes: B tensors [G_b, 6].

    Returns:
        (CE + BCE, {"ce", "bce", "accuracy": share of GT boxes whose best proposal gets the highest logit}).
        Items without proposals are skipped; an all-empty batch gives 0 (attached).
    """
    ces, flat_logits, flat_targets, hits = [], [], [], []
    for lg, props, gt in zip(logits, proposals, gt_boxes):
        if lg.numel() == 0:
            continue
        props, gt = props.to(lg).reshape(-1, 6), gt.to(lg).reshape(-1, 6)
        target = torch.zeros_like(lg)
        if gt.shape[0]:
            best = box_iou_3d_pairwise(props, gt).argmax(0)  # [G]
            target[best] = 1.0
            ces.append(F.cross_entropy(lg[None].expand(len(best), -1), best, reduction="none"))
            hits.append((lg.argmax() == best).to(lg.dtype))
        flat_logits.append(lg)
        flat_targets.append(target)
    if not flat_logits:
        zero = sum((lg.sum() for lg in logits), torch.zeros(())) * 0.0
        return zero, {"ce": zero.detach(), "bce": zero.detach(), "accuracy": zero.detach()}
    bce = F.binary_cross_entropy_with_logits(torch.cat(flat_logits), torch.cat(flat_targets))
    ce = torch.cat(ces).mean() if ces else bce * 0.0
    acc = torch.cat(hits).mean() if hits else bce.new_zeros(())
    return ce + bce, {"ce": ce.detach(), "bce": bce.detach(), "accuracy": acc.detach()}
