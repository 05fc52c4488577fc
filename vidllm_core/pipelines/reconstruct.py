"""The metric reconstruction of a vision pass as numpy arrays with the maps from network pixels back to the source
frames (Sec. 3.2 output, Sec. 4.1 preprocessing), the model's preprocessing settings (their one owner) and the one
finiteness check. `pipelines.vision_pass.run_vision_pass` makes it; `Scene.reconstruction` holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vidllm_core.data.preprocess import ResizeInfo
from vidllm_core.errors import CheckpointError
from vidllm_core.export import DEFAULT_CONF_PERCENTILE, PointCloud, camera_to_world, points_from_prediction

if TYPE_CHECKING:
    from vidllm_core.models.vidllm import SceneGeometry


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

    @classmethod
    def from_geometry(cls, geometry: "SceneGeometry", colors: np.ndarray, infos: list[ResizeInfo],
                      settings: PreprocessSettings) -> "Reconstruction":
        """The numpy view of a network `SceneGeometry` (any device) for `colors` uint8 [S,H,W,3]."""
        S, H, W = (int(x) for x in geometry.depth.shape)
        return cls(colors=colors, depth=_to_numpy(geometry.depth).reshape(S, H, W),
                   depth_conf=_to_numpy(geometry.depth_conf).reshape(S, H, W),
                   extrinsic=_to_numpy(geometry.extrinsic).reshape(S, 3, 4),
                   intrinsic=_to_numpy(geometry.intrinsic).reshape(S, 3, 3),
                   world_points=_to_numpy(geometry.world_points).reshape(S, H, W, 3), scale=float(geometry.scale),
                   metric=bool(geometry.metric), infos=list(infos), settings=settings)

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


def check_finite(geometry: "SceneGeometry", tokens: Any = None, where: str = "") -> None:
    """The one finiteness check of a vision pass: CheckpointError (one line, naming the input `where` and up to 5
    frames) when depth, cameras or the language tokens are not finite (untrained or broken weights)."""
    import torch

    S = int(geometry.depth.shape[0])
    prefix = f"{where}: " if where else ""
    for name, value in (("depth", geometry.depth), ("extrinsic", geometry.extrinsic),
                        ("intrinsic", geometry.intrinsic)):
        bad = torch.nonzero(~torch.isfinite(value.reshape(S, -1)).all(dim=1)).flatten()
        if len(bad):
            frames = ", ".join(map(str, bad[:5].tolist()))
            raise CheckpointError(f"{prefix}the network predicted non-finite {name} values for frame(s) {frames}; "
                                  "the model weights look untrained or broken")
    if tokens is not None and not bool(torch.isfinite(tokens).all()):
        raise CheckpointError(f"{prefix}the network predicted non-finite 3D tokens; the model weights look untrained or "
                              "broken")
