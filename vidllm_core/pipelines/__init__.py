"""End-to-end pipelines shared by the CLI, the evaluation and the benchmarks (here: frames -> metric
reconstruction, paper Sec. 3.2; the language-side pipelines live in sibling modules)."""

from vidllm_core.pipelines.reconstruct import (PreprocessSettings, Reconstruction, preprocess_settings,
                                               reconstruct_frames)

__all__ = ["PreprocessSettings", "Reconstruction", "preprocess_settings", "reconstruct_frames"]
