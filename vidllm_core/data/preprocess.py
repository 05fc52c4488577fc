"""Image preprocessing for the reconstruction branch: VGGT `load_and_preprocess_images` (crop / pad) and Sec. 4.1.

Modes (all resize with PIL BICUBIC in uint8, return float32 in [0,1], no mean/std normalisation):
  crop        official VGGT default: W = target, H = round(h*target/w / p)*p (Python round, half to even); if
              H > target the height is centre-cropped to target (start = (H-target)//2).
  pad         official VGGT: the longer side = target, the other round(.../p)*p; pad to target x target with
              white (1.0), top/left = pad//2, the remainder at bottom/right.
  short_side  paper Sec. 4.1 ("resize the shorter side to 518, crop so H and W are multiples of 14"): the shorter
              side becomes `target_size`, the longer one round(long*target/short) (half to even); then both
              sides are centre-cropped (start = excess//2) down to the largest multiple of `patch_size`.
When the images of one call end with different shapes (crop / short_side with mixed aspect ratios), each one is
padded with white, centred (top = (maxH-h)//2), to the largest H and W, as the official function does.
Reference: vggt/utils/load_fn.py at commit 44b3afb; parity fixture ../shared/fixtures/vggt/preprocess/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

MODES: tuple[str, ...] = ("crop", "pad", "short_side")


@dataclass(frozen=True)
class ResizeInfo:
    """How one source image maps to its output tensor.

    Output pixel (u, v) comes from resized pixel (u - pad_left + crop_left, v - pad_top + crop_top); the resized
    image is the source scaled by (resized_width / source_width, resized_height / source_height).
    """

    source_width: int
    source_height: int
    resized_width: int
    resized_height: int
    crop_left: int
    crop_top: int
    pad_left: int
    pad_top: int
    width: int  # output width
    height: int  # output height

    def output_to_source(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map output pixel coordinates to source pixel coordinates (pixel centres at integers)."""
        sx = self.source_width / self.resized_width
        sy = self.source_height / self.resized_height
        x = (np.asarray(u, dtype=np.float64) - self.pad_left + self.crop_left + 0.5) * sx - 0.5
        y = (np.asarray(v, dtype=np.float64) - self.pad_top + self.crop_top + 0.5) * sy - 0.5
        return x, y

    def intrinsics_to_source(self, K: np.ndarray) -> np.ndarray:
        """3x3 intrinsics at the output resolution -> the same camera at the source resolution."""
        sx = self.source_width / self.resized_width
        sy = self.source_height / self.resized_height
        K = np.asarray(K, dtype=np.float64)
        out = K.copy()
        out[..., 0, 0] = K[..., 0, 0] * sx
        out[..., 1, 1] = K[..., 1, 1] * sy
        out[..., 0, 1] = K[..., 0, 1] * sx
        out[..., 0, 2] = (K[..., 0, 2] - self.pad_left + self.crop_left + 0.5) * sx - 0.5
        out[..., 1, 2] = (K[..., 1, 2] - self.pad_top + self.crop_top + 0.5) * sy - 0.5
        return out


def _to_rgb_pil(image: "Image.Image | np.ndarray") -> "Image.Image":
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        image = Image.fromarray(image)
    if image.mode == "RGB":
        return image
    from vidllm_core.data.video import rgb8

    return Image.fromarray(rgb8(image))  # white behind transparency, 16-bit grey scaled to 8 bits


def _target_shape(width: int, height: int, mode: str, target: int, patch: int) -> tuple[int, int]:
    """Resized (width, height) before any crop or pad; the float expressions follow load_fn.py's order."""
    if mode == "crop":
        return target, round(height * (target / width) / patch) * patch
    if mode == "pad":
        if width >= height:
            return target, round(height * (target / width) / patch) * patch
        return round(width * (target / height) / patch) * patch, target
    if width <= height:  # short_side
        return target, round(height * (target / width))
    return round(width * (target / height)), target


def _preprocess_one(image: "Image.Image", mode: str, target: int, patch: int) -> tuple[np.ndarray, ResizeInfo]:
    from PIL import Image

    w, h = image.size
    new_w, new_h = _target_shape(w, h, mode, target, patch)
    if new_w < 1 or new_h < 1:
        raise ValueError(f"image of {w}x{h} is too thin for {mode} preprocessing at {target}px")
    arr = np.asarray(image.resize((new_w, new_h), Image.Resampling.BICUBIC), dtype=np.uint8)
    crop_top = crop_left = pad_top = pad_left = 0
    if mode == "crop" and new_h > target:
        crop_top = (new_h - target) // 2
        arr = arr[crop_top:crop_top + target]
    elif mode == "pad":
        pad_h, pad_w = target - arr.shape[0], target - arr.shape[1]
        pad_top, pad_left = max(pad_h, 0) // 2, max(pad_w, 0) // 2
        arr = _pad_white(arr, target, target)
    elif mode == "short_side":
        out_h, out_w = (new_h // patch) * patch, (new_w // patch) * patch
        if out_h < patch or out_w < patch:
            raise ValueError(f"target_size {target} is smaller than patch_size {patch}")
        crop_top, crop_left = (new_h - out_h) // 2, (new_w - out_w) // 2
        arr = arr[crop_top:crop_top + out_h, crop_left:crop_left + out_w]
    info = ResizeInfo(source_width=w, source_height=h, resized_width=new_w, resized_height=new_h,
                      crop_left=crop_left, crop_top=crop_top, pad_left=pad_left, pad_top=pad_top,
                      width=arr.shape[1], height=arr.shape[0])
    return arr, info


def _pad_white(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre `arr` [h,w,3] on a white canvas of (height, width): top = (height-h)//2, left = (width-w)//2."""
    h, w = arr.shape[:2]
    if h == height and w == width:
        return arr
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    out[top:top + h, left:left + w] = arr
    return out


def preprocess_with_info(
    images: Sequence["Image.Image | np.ndarray"] | np.ndarray,
    mode: str = "crop",
    target_size: int = 518,
    patch_size: int = 14,
) -> tuple["torch.Tensor", list[ResizeInfo]]:
    """Like `preprocess_images`, also returning one `ResizeInfo` per image (maps outputs back to the source)."""
    import torch

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if target_size < patch_size or patch_size < 1:
        raise ValueError(f"need target_size >= patch_size >= 1, got {target_size} and {patch_size}")
    if len(images) == 0:
        raise ValueError("at least one image is required")
    arrays: list[np.ndarray] = []
    infos: list[ResizeInfo] = []
    for image in images:
        arr, info = _preprocess_one(_to_rgb_pil(image), mode, target_size, patch_size)
        arrays.append(arr)
        infos.append(info)
    max_h = max(a.shape[0] for a in arrays)
    max_w = max(a.shape[1] for a in arrays)
    if any(a.shape[:2] != (max_h, max_w) for a in arrays):
        for i, (arr, info) in enumerate(zip(arrays, infos)):
            top, left = (max_h - arr.shape[0]) // 2, (max_w - arr.shape[1]) // 2
            arrays[i] = _pad_white(arr, max_h, max_w)
            infos[i] = ResizeInfo(**{**info.__dict__, "pad_top": info.pad_top + top,
                                     "pad_left": info.pad_left + left, "width": max_w, "height": max_h})
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float().div(255), infos


def preprocess_images(
    images: Sequence["Image.Image | np.ndarray"] | np.ndarray,
    mode: str = "crop",
    target_size: int = 518,
    patch_size: int = 14,
) -> "torch.Tensor":
    """PIL images or uint8 [H,W,3|4] arrays -> float32 [S,3,H,W] in [0,1] (see the module docstring for modes).

    Bit-exact with the official `load_and_preprocess_images` in crop and pad modes (patch_size 14).
    """
    return preprocess_with_info(images, mode, target_size, patch_size)[0]
