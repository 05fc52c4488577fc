"""Explicit key maps from public checkpoints (VGGT, Hugging Face DINOv2) onto vidllm modules."""
