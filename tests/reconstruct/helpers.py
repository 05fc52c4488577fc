"""A synthetic ground-truth reconstruction (a box room seen by a moving camera) for the chunking and export tests."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from vidllm_core.data.preprocess import ResizeInfo
from vidllm_core.pipelines.reconstruct import PreprocessSettings, Reconstruction


def room_reconstruction(num_frames: int = 12, height: int = 12, width: int = 16, seed: int = 0) -> Reconstruction:
    """Cameras walking along a line and turning slowly inside a 6 x 3 x 6 m box; exact depth and world points."""
    rng = np.random.default_rng(seed)
    K = np.array([[12.0, 0, (width - 1) / 2], [0, 12.0, (height - 1) / 2], [0, 0, 1]])
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("y", np.linspace(0, 0.6, num_frames)[:, None]).as_matrix()
    c2w[:, :3, 3] = np.column_stack([np.linspace(0, 1.5, num_frames), np.zeros(num_frames), np.zeros(num_frames)])
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    lo, hi = np.array([-3.0, -1.5, -2.0]), np.array([3.0, 1.5, 4.0])
    depth = np.empty((num_frames, height, width))
    points = np.empty((num_frames, height, width, 3))
    for s in range(num_frames):
        d = rays_cam @ c2w[s, :3, :3].T
        o = c2w[s, :3, 3]
        with np.errstate(divide="ignore"):
            t = np.max(np.stack([(lo - o) / d, (hi - o) / d]), axis=0).min(-1)  # exit distance along each ray
        depth[s] = t  # rays_cam has z = 1, so t is the z depth
        points[s] = o + d * t[..., None]
    R = np.swapaxes(c2w[:, :3, :3], 1, 2)
    extrinsic = np.concatenate([R, -R @ c2w[:, :3, 3:]], axis=2)
    info = ResizeInfo(width, height, width, height, 0, 0, 0, 0, width, height)
    colors = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    return Reconstruction(colors=colors, depth=depth.astype(np.float32),
                          depth_conf=np.full((num_frames, height, width), 2.0, np.float32),
                          extrinsic=extrinsic.astype(np.float32), intrinsic=np.tile(K, (num_frames, 1, 1)).astype(
                              np.float32), world_points=points.astype(np.float32), scale=1.0, metric=True,
                          infos=[info] * num_frames, settings=PreprocessSettings("short_side", width, num_frames, 4))


def slice_reconstruction(rec: Reconstruction, start: int, stop: int) -> Reconstruction:
    """Frames [start, stop) of `rec`."""
    from dataclasses import replace

    return replace(rec, colors=rec.colors[start:stop], depth=rec.depth[start:stop],
                   depth_conf=rec.depth_conf[start:stop], extrinsic=rec.extrinsic[start:stop],
                   intrinsic=rec.intrinsic[start:stop], world_points=rec.world_points[start:stop],
                   infos=rec.infos[start:stop])
