"""Training losses of Vid-LLM (paper Sec. 3.4, Eq. 5-9), each a named function; combiners return (total, parts)."""

from vidllm_core.losses.combine import STAGE2_TERMS, stage2_loss
from vidllm_core.losses.distill import (
    distillation_loss,
    geometry_feature_loss,
    match_token_grid,
    semantic_feature_loss,
    structural_consistency_loss,
)
from vidllm_core.losses.grounding import (
    DEFAULT_GROUNDING_WEIGHTS,
    box_iou_3d,
    box_iou_3d_pairwise,
    box_iou_loss,
    box_l1_loss,
    grounding_loss,
    hungarian_match,
    proposal_loss,
)
from vidllm_core.losses.language import IGNORE_INDEX, answer_cross_entropy, mask_prompt_labels
from vidllm_core.losses.metric_depth import metric_depth_loss
from vidllm_core.losses.reconstruction import (
    NormalizedScene,
    camera_loss,
    depth_loss,
    filter_by_quantile,
    gradient_loss,
    normalize_gt_scene,
    point_loss,
    regression_loss,
)

__all__ = [
    "DEFAULT_GROUNDING_WEIGHTS",
    "IGNORE_INDEX",
    "STAGE2_TERMS",
    "NormalizedScene",
    "answer_cross_entropy",
    "box_iou_3d",
    "box_iou_3d_pairwise",
    "box_iou_loss",
    "box_l1_loss",
    "camera_loss",
    "depth_loss",
    "distillation_loss",
    "filter_by_quantile",
    "geometry_feature_loss",
    "gradient_loss",
    "grounding_loss",
    "hungarian_match",
    "proposal_loss",
    "mask_prompt_labels",
    "match_token_grid",
    "metric_depth_loss",
    "normalize_gt_scene",
    "point_loss",
    "regression_loss",
    "semantic_feature_loss",
    "structural_consistency_loss",
    "stage2_loss",
]
