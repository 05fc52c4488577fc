"""End-to-end pipelines shared by the CLI and the evaluation: frames -> metric reconstruction (paper Sec. 3.2)."""

from vidllm_core.pipelines.reconstruct import (PreprocessSettings, Reconstruction, preprocess_settings,
                                               reconstruct_frames)

__all__ = ["PreprocessSettings", "Reconstruction", "preprocess_settings", "reconstruct_frames"]
