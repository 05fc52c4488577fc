"""The official VGGT network behind the vision-pass model protocol (`reconstruct(images) -> SceneGeometry`, VGGT's
own preprocessing), so `run_vision_pass` and `vidllm reconstruct --vggt` run it like a VidLLM. Not in the paper
(VGGT, Wang et al. 2025: relative scale, world = first camera)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VGGTPreprocess:
    """Preprocessing of the official VGGT checkpoint (`load_and_preprocess_images` defaults)."""

    mode: str = "crop"
    image_size: int = 518
    patch_size: int = 14
    num_frames: int = 32


class OfficialVGGTAdapter:
    """Wrap an official-VGGT network (relative scale) so it answers `reconstruct` like `VidLLM` does."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.preprocess_config = VGGTPreprocess()

    def to(self, device: str) -> "OfficialVGGTAdapter":
        self.net.to(device)
        return self

    def reconstruct(self, images: Any) -> Any:
        """images [S,3,H,W] in [0,1] -> `SceneGeometry` (scale 1, metric False)."""
        import torch

        from vidllm_core.geometry.pose_encoding import pose_encoding_to_extri_intri
        from vidllm_core.geometry.unproject import unproject_depth_to_world
        from vidllm_core.models.vidllm import SceneGeometry

        with torch.inference_mode():
            pred = self.net(images)
        H, W = images.shape[-2:]
        extrinsic, intrinsic = pose_encoding_to_extri_intri(pred["pose_enc"], (H, W))
        depth = pred["depth"].reshape(-1, H, W)
        extrinsic, intrinsic = extrinsic.reshape(-1, 3, 4), intrinsic.reshape(-1, 3, 3)
        return SceneGeometry(depth, pred["depth_conf"].reshape(-1, H, W), extrinsic, intrinsic,
                             unproject_depth_to_world(depth, extrinsic, intrinsic), scale=1.0, metric=False)
