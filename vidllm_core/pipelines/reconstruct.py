"""Frames -> metric reconstruction: preprocess as the model was trained (Sec. 4.1), run the reconstruction branch
with real-scale alignment (Sec. 3.2), check the output, and keep the maps from network pixels back to the source
frames. Used by `vidllm reconstruct` and by the model-driven `vidllm eval depth|pose|recon`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidllm_core.data.preprocess import ResizeInfo
from vidllm_core.errors import CheckpointError
from vidllm_core.export import DEFAULT_CONF_PERCENTILE, PointCloud, camera_to_world, points_from_prediction


@dataclass(frozen=True)
class PreprocessSettings:
    """How a model wants its frames: `mode` (short_side | crop | pad), `image_size`, default `num_frames`, patch."""

    mode: str
    image_size: int
    num_frames: int
    patch_size: int


def preprocess_settings(model: Any) -> PreprocessSettings:
    """The preprocessing of a loaded model: its `preprocess_config` when it has one (adapters of other networks),
    else `config.input` with the encoder's patch size (VidLLM)."""
    cfg = getattr(model, "preprocess_config", None)
    config = getattr(model, "config", None)
    if cfg is None and config is not None:
        cfg = config.input
    if cfg is None:
        raise CheckpointError("the model has neither `preprocess_config` nor `config.input`: cannot preprocess frames")
    patch = getattr(cfg, "patch_size", None)
    if patch is None:
        patch = getattr(getattr(config, "encoder", None), "patch_size", 14)
    return PreprocessSettings(str(cfg.mode), int(cfg.image_size), int(cfg.num_frames), int(patch))


def _to_numpy(x: Any) -> np.ndarray:
    import torch

    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x)


@dataclass
class Reconstruction:
    """One reconstructed frame sequence, as numpy arrays at the network resolution (S frames of H x W).

    colors uint8 [S,H,W,3] (the network input), depth / depth_conf float32 [S,H,W] (metres when `metric`),
    extrinsic float32 [S,3,4] camera-from-world (OpenCV axes, world = the first camera), intrinsic [S,3,3] pixels,
    world_points float32 [S,H,W,3], infos: one `ResizeInfo` per frame (network pixel -> source pixel).
    """

    colors: np.ndarray
    depth: np.ndarray
    depth_conf: np.ndarray
    extrinsic: np.ndarray
    intrinsic: np.ndarray
    world_points: np.ndarray
    scale: float
    metric: bool
    infos: list[ResizeInfo]
    settings: PreprocessSettings
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def height(self) -> int:
        return int(self.depth.shape[1])

    @property
    def width(self) -> int:
        return int(self.depth.shape[2])

    def content_box(self, index: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of frame `index`'s image content in the network input (padding excluded)."""
        info = self.infos[index]
        h_in = min(info.resized_height - info.crop_top, self.height - info.pad_top)
        w_in = min(info.resized_width - info.crop_left, self.width - info.pad_left)
        return info.pad_top, info.pad_left, h_in, w_in

    def valid_mask(self) -> np.ndarray:
        """bool [S,H,W]: pixels showing the image (white padding of pad mode / mixed shapes excluded)."""
        valid = np.zeros((self.num_frames, self.height, self.width), dtype=bool)
        for i in range(self.num_frames):
            top, left, h, w = self.content_box(i)
            valid[i, top:top + h, left:left + w] = True
        return valid

    def camera_to_world(self) -> np.ndarray:
        """float64 [S,4,4] camera-to-world in the reconstruction's world (the first camera)."""
        return camera_to_world(self.extrinsic)

    def source_intrinsics(self) -> np.ndarray:
        """float64 [S,3,3]: each predicted camera at its source frame's resolution."""
        return np.stack([inf.intrinsics_to_source(k) for inf, k in zip(self.infos, self.intrinsic)])

    def point_cloud(self, conf_percentile: float | None = DEFAULT_CONF_PERCENTILE, max_points: int | None = None,
                    voxel_size: float | None = None, seed: int = 0) -> PointCloud:
        """Confident points of the image content (see `export.points_from_prediction`)."""
        return points_from_prediction(self.world_points, self.colors, self.depth_conf, conf_percentile=conf_percentile,
                                      max_points=max_points, voxel_size=voxel_size, mask=self.valid_mask(), seed=seed)

    def depth_at(self, index: int, height: int, width: int, target_intrinsic: np.ndarray | None = None,
                 source_intrinsic: np.ndarray | None = None) -> np.ndarray:
        """Depth of frame `index` resampled (bilinear) to another image of the same camera, float32 [height,width].

        The target image (e.g. a ScanNet depth frame) maps to the source frame through the two intrinsics when
        both are given (`x_s = fx_s (x_t - cx_t) / fx_t + cx_s`; registered colour and depth), else by the image
        sizes (same field of view). Source pixels then map to network pixels by inverting the preprocessing
        resize/crop/pad; target pixels outside the part the network saw take the nearest seen pixel's value.
        """
        from scipy.ndimage import map_coordinates

        info = self.infos[index]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        if target_intrinsic is not None and source_intrinsic is not None:
            kt, ks = np.asarray(target_intrinsic, np.float64), np.asarray(source_intrinsic, np.float64)
            x_s = ks[0, 0] * (xs - kt[0, 2]) / kt[0, 0] + ks[0, 2]
            y_s = ks[1, 1] * (ys - kt[1, 2]) / kt[1, 1] + ks[1, 2]
        else:
            x_s = (xs + 0.5) * info.source_width / width - 0.5
            y_s = (ys + 0.5) * info.source_height / height - 0.5
        u = (x_s + 0.5) * info.resized_width / info.source_width - 0.5 + info.pad_left - info.crop_left
        v = (y_s + 0.5) * info.resized_height / info.source_height - 0.5 + info.pad_top - info.crop_top
        top, left, h, w = self.content_box(index)
        u = np.clip(u, left, left + w - 1)
        v = np.clip(v, top, top + h - 1)
        out = map_coordinates(self.depth[index].astype(np.float64), [v, u], order=1, mode="nearest")
        return out.astype(np.float32)


def _check_finite(depth: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> None:
    S = len(depth)
    for name, value in (("depth", depth), ("extrinsic", extrinsic), ("intrinsic", intrinsic)):
        bad = np.flatnonzero(~np.isfinite(value.reshape(S, -1)).all(axis=1))
        if len(bad):
            frames = ", ".join(map(str, bad[:5].tolist()))
            raise CheckpointError(f"the network predicted non-finite {name} values for frame(s) {frames}; "
                                  "the model weights look untrained or broken")


def reconstruct_frames(model: Any, frames: Sequence[Any] | np.ndarray, device: str = "cpu",
                       on_stage: Callable[[str], None] | None = None) -> Reconstruction:
    """Reconstruct already-sampled frames (uint8 [H,W,3] arrays or PIL images, any sizes) with `model`.

    `model` answers `reconstruct(images [S,3,H,W] in [0,1]) -> dict` like `VidLLM.reconstruct` and exposes its
    preprocessing (`preprocess_settings`). `on_stage(name)` is called before "preprocessing", "network" and
    "postprocessing" (progress displays). Raises `CheckpointError` when the network returns non-finite depth or
    cameras (untrained or broken weights).
    """
    import torch

    from vidllm_core.data.preprocess import preprocess_with_info

    stage = on_stage or (lambda name: None)
    settings = preprocess_settings(model)
    timings: dict[str, float] = {}
    stage("preprocessing")
    t = time.perf_counter()
    images, infos = preprocess_with_info(list(frames), mode=settings.mode, target_size=settings.image_size,
                                         patch_size=settings.patch_size)
    timings["preprocess_s"] = time.perf_counter() - t
    S, _, H, W = images.shape
    stage("network")
    t = time.perf_counter()
    with torch.inference_mode():
        pred = model.reconstruct(images.to(device))
    timings["network_s"] = time.perf_counter() - t
    stage("postprocessing")
    t = time.perf_counter()
    depth = _to_numpy(pred["depth"]).reshape(S, H, W)
    extrinsic = _to_numpy(pred["extrinsic"]).reshape(S, 3, 4)
    intrinsic = _to_numpy(pred["intrinsic"]).reshape(S, 3, 3)
    _check_finite(depth, extrinsic, intrinsic)
    rec = Reconstruction(
        colors=(images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(),
        depth=depth, depth_conf=_to_numpy(pred["depth_conf"]).reshape(S, H, W), extrinsic=extrinsic,
        intrinsic=intrinsic, world_points=_to_numpy(pred["world_points"]).reshape(S, H, W, 3),
        scale=float(pred.get("scale", 1.0)), metric=bool(pred.get("metric", False)), infos=list(infos),
        settings=settings, timings=timings)
    timings["postprocess_s"] = time.perf_counter() - t
    return rec
