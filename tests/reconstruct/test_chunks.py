"""Chunked long-video reconstruction: planning, memory budget, Umeyama, and the merged scene of exact chunks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.reconstruct.helpers import room_reconstruction, slice_reconstruction
from vidllm_core.errors import DataError
from vidllm_core.pipelines.long_video import (
    Similarity, chunk_frames_for_budget, plan_chunks, reconstruct_in_chunks, transform_reconstruction, umeyama,
)


def test_plan_covers_every_frame_with_overlaps() -> None:
    ranges = plan_chunks(1000, 100, 10)
    assert ranges[0] == (0, 100) and ranges[-1] == (900, 1000)
    assert all(b - a == 100 for a, b in ranges)
    assert all(prev[1] - nxt[0] >= 10 for prev, nxt in zip(ranges, ranges[1:]))
    assert len(ranges) == 11
    assert plan_chunks(8, 8, 2) == [(0, 8)]


@pytest.mark.parametrize("chunk, overlap, message", [
    (20, 2, "chunk size 20 is larger than the video's 10 sampled frames"),
    (1, 0, "chunk size must be at least 2"),
    (5, 5, "overlap must be between 1 and chunk size - 1"),
    (5, 0, "overlap must be between 1 and chunk size - 1"),
])
def test_plan_refuses_bad_sizes(chunk: int, overlap: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        plan_chunks(10, chunk, overlap)


def test_budget_smaller_gives_smaller_chunks_and_refuses_too_small() -> None:
    config = SimpleNamespace(depth_head=SimpleNamespace(features=32), point_head=None,
                             metric_depth=SimpleNamespace(features=32))
    kw = dict(num_frames=1000, height=84, width=112, model_config=config, overlap=4, base_bytes=400 * 2 ** 20)
    big, small = chunk_frames_for_budget(2.0, **kw), chunk_frames_for_budget(1.2, **kw)
    assert 4 < small < big < 1000
    assert chunk_frames_for_budget(100.0, **kw) == 1000
    with pytest.raises(DataError, match="too small to hold and write the outputs of 1000 frames"):
        chunk_frames_for_budget(1.1, **kw)
    wide = SimpleNamespace(depth_head=SimpleNamespace(features=512), point_head=None,
                           metric_depth=SimpleNamespace(features=512))  # ~180 MB per frame
    with pytest.raises(DataError, match="too small for one chunk of 5 frames"):
        chunk_frames_for_budget(1.0, **{**kw, "num_frames": 100, "model_config": wide})
    with pytest.raises(DataError, match="positive number"):
        chunk_frames_for_budget(float("nan"), **kw)


@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_recovers_a_similarity(with_scale: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    truth = Similarity(1.7 if with_scale else 1.0, Rotation.random(random_state=3).as_matrix(), np.array([1, -2, .5]))
    fit = umeyama(x, truth.apply(x), rng.uniform(0.5, 1, 200), with_scale)
    assert fit.scale == pytest.approx(truth.scale, rel=1e-9)
    np.testing.assert_allclose(fit.rotation, truth.rotation, atol=1e-9)
    np.testing.assert_allclose(fit.translation, truth.translation, atol=1e-9)


def test_chunks_in_their_own_worlds_merge_back_into_the_scene() -> None:
    """Oracle: every chunk is the exact scene in a random Sim(3) world of its own (scale like a per-chunk metric
    estimate); the merged result equals the scene in the first chunk's world."""
    gt = room_reconstruction(num_frames=23)
    rng = np.random.default_rng(1)
    worlds: dict[int, Similarity] = {}

    def run_chunk(start: int, stop: int):
        worlds[start] = Similarity(float(rng.uniform(0.5, 2)), Rotation.random(random_state=start).as_matrix(),
                                   rng.normal(size=3))
        return transform_reconstruction(slice_reconstruction(gt, start, stop), worlds[start])

    merged, chunks = reconstruct_in_chunks(run_chunk, 23, chunk_frames=8, overlap=3)
    assert [(c.start, c.stop) for c in chunks] == [(0, 8), (5, 13), (10, 18), (15, 23)]
    expected = transform_reconstruction(gt, worlds[0])
    assert merged.num_frames == 23
    np.testing.assert_allclose(merged.world_points, expected.world_points, atol=1e-3)
    np.testing.assert_allclose(merged.extrinsic, expected.extrinsic, atol=1e-4)
    np.testing.assert_allclose(merged.depth, expected.depth, rtol=1e-4)
    np.testing.assert_array_equal(merged.colors, gt.colors)
    assert all(c.residual < 1e-4 for c in chunks[1:])


def test_se3_mode_keeps_each_chunks_scale() -> None:
    gt = room_reconstruction(num_frames=10)
    merged, chunks = reconstruct_in_chunks(
        lambda a, b: transform_reconstruction(slice_reconstruction(gt, a, b), Similarity(1.0 if a == 0 else 1.1,
                                                                                         np.eye(3), np.zeros(3))),
        10, chunk_frames=6, overlap=2, with_scale=False)
    assert chunks[1].transform.scale == 1.0
    np.testing.assert_allclose(merged.depth[6:], gt.depth[6:] * 1.1, rtol=1e-5)
