"""Benchmark loaders for ScanQA, SQA3D, ScanRefer / Scan2Cap, Multi3DRefer, Nr3D / Sr3D and ScanNet scene folders
(file formats: ../shared/docs/FORMATS.md; typed, frozen records; bad input raises `DataError`)."""

from vidllm_core.data.benchmarks._common import Problems, scene_path
from vidllm_core.data.benchmarks.multi3drefer import EVAL_TYPES, Multi3DReferDescription, load_multi3drefer
from vidllm_core.data.benchmarks.referit3d import VIEW_DEPENDENT_WORDS, ReferIt3DUtterance, load_referit3d
from vidllm_core.data.benchmarks.scannet import (PosedFrame, ScanNetScene, boxes_from_scannet_scan,
                                                 load_gt_boxes_file, load_scannet_scene, open_scene,
                                                 read_axis_alignment, read_depth_png, read_matrix, read_scene_list,
                                                 save_gt_boxes_file)
from vidllm_core.data.benchmarks.scanqa import ScanQAQuestion, load_scanqa
from vidllm_core.data.benchmarks.scanrefer import (Scan2CapObject, ScanReferDescription, load_scan2cap,
                                                   load_scanrefer, scan2cap_corpus)
from vidllm_core.data.benchmarks.sqa3d import QUESTION_TYPES, SQA3DQuestion, find_sqa3d_pair, load_sqa3d

__all__ = [
    "EVAL_TYPES", "Multi3DReferDescription", "PosedFrame", "Problems", "QUESTION_TYPES", "ReferIt3DUtterance",
    "SQA3DQuestion", "Scan2CapObject", "ScanNetScene", "ScanQAQuestion", "ScanReferDescription",
    "VIEW_DEPENDENT_WORDS", "boxes_from_scannet_scan", "find_sqa3d_pair", "load_gt_boxes_file", "load_multi3drefer",
    "load_referit3d", "load_scan2cap", "load_scannet_scene", "load_scanqa", "load_scanrefer",
    "load_sqa3d", "open_scene", "read_axis_alignment", "read_depth_png", "read_matrix", "read_scene_list",
    "save_gt_boxes_file", "scan2cap_corpus", "scene_path",
]
