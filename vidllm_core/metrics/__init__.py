"""Benchmark-faithful evaluation metrics (captioning, QA, grounding, depth, pose, reconstruction).

Reference: ../shared/docs/METRICS.md (official evaluators: pycocoevalcap 1.2, ScanQA / LLaVA-3D / LEO, ScanRefer,
M3DRef-CLIP, VGGT / PoseDiffusion, NeuralRecon / Atlas); issue 4. Pure library: no CLI, no prints, no global state.
"""

from vidllm_core.metrics.caption import PIPELINES, caption_scores, meteor_available, preprocess_captions
from vidllm_core.metrics.depth import align_depth, depth_metrics
from vidllm_core.metrics.grounding import (
    MULTI3DREFER_EVAL_TYPES,
    box3d_iou,
    box3d_iou_matrix,
    center_size_to_minmax,
    multi3drefer_f1,
    multi3drefer_query_f1,
    referit3d_accuracy,
    scanrefer_accuracy,
)
from vidllm_core.metrics.pose import pose_auc, pose_errors, pose_metrics, pose_scores_from_errors
from vidllm_core.metrics.qa import answer_match, clean_answer, exact_match, qa_scores, refined_exact_match
from vidllm_core.metrics.reconstruction import reconstruction_metrics, voxel_down_sample
from vidllm_core.metrics.tokenize_ptb import ptb_tokenize

__all__ = [
    "MULTI3DREFER_EVAL_TYPES",
    "PIPELINES",
    "align_depth",
    "answer_match",
    "box3d_iou",
    "box3d_iou_matrix",
    "caption_scores",
    "center_size_to_minmax",
    "clean_answer",
    "depth_metrics",
    "exact_match",
    "meteor_available",
    "multi3drefer_f1",
    "multi3drefer_query_f1",
    "pose_auc",
    "pose_errors",
    "pose_metrics",
    "pose_scores_from_errors",
    "preprocess_captions",
    "ptb_tokenize",
    "qa_scores",
    "reconstruction_metrics",
    "referit3d_accuracy",
    "refined_exact_match",
    "scanrefer_accuracy",
    "voxel_down_sample",
]
