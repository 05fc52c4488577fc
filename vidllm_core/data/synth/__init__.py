"""synthrooms: procedurally generated indoor videos with exact 3D ground truth and geometry-derived language.

Reference: issue 3 (synthrooms); output follows the ScanNet posed-images convention and the real benchmark formats
of ../shared/docs/FORMATS.md. Entry points: `generate_dataset`, `build_scene`, `read_scene`, `read_annotations`.
"""

from vidllm_core.data.synth.catalog import CATEGORIES, COLOURS
from vidllm_core.data.synth.dataset import (
    SceneData,
    SynthConfig,
    annotation_files,
    build_scene,
    generate_dataset,
    read_annotations,
    read_scene,
    read_split,
    scene_mesh,
    write_gt_boxes,
)
from vidllm_core.data.synth.render import Renderer
from vidllm_core.data.synth.scene import Scene, load_layout, sample_scene, scene_from_layout

__all__ = ["CATEGORIES", "COLOURS", "Renderer", "Scene", "SceneData", "SynthConfig", "annotation_files", "build_scene",
           "generate_dataset", "load_layout", "read_annotations", "read_scene", "read_split", "sample_scene",
           "scene_from_layout", "scene_mesh", "write_gt_boxes"]
