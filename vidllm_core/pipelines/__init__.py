"""End-to-end pipelines shared by the CLI, the evaluation and the benchmarks (here: the one vision
pass, frames -> `Scene`, paper Sec. 3.1-3.3; the language-side pipelines live in sibling modules)."""

from vidllm_core.pipelines.reconstruct import PreprocessSettings, Reconstruction, preprocess_settings
from vidllm_core.pipelines.vision_pass import Placement, Scene, run_vision_pass

__all__ = ["Placement", "PreprocessSettings", "Reconstruction", "Scene", "preprocess_settings", "run_vision_pass"]
