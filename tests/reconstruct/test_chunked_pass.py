"""The chunked vision pass with the demo model: a chunk source reads its slice; a long-video `ask` encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidllm_core.data.frames import open_frame_source
from vidllm_core.pipelines.chunked_pass import ChunkOptions, FrameRange, run_chunked_vision_pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of a textured scene panning right."""
    out = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    wide = (rng.random((84, 400, 3)) * 255).astype(np.uint8)
    for i in range(12):
        Image.fromarray(np.ascontiguousarray(wide[:, 10 * i:10 * i + 112])).save(out / f"{i:03d}.png")
    return out


@pytest.fixture(scope="module")
def model():
    from vidllm_core.assets import default_model_dir
    from vidllm_core.models.vidllm import VidLLM

    return VidLLM.from_pretrained(default_model_dir(), language=False).eval()


def test_frame_range_reads_its_slice(folder: Path) -> None:
    source = open_frame_source(folder)
    frames = source.read(12)
    chunk = FrameRange(source, frames, 4, 9)
    part = chunk.read(5)
    assert len(chunk) == 5 and part.ids == frames.ids[4:9]
    np.testing.assert_array_equal(part.images, frames.images[4:9])
    with pytest.raises(ValueError):
        chunk.read(4)


def test_chunked_encoding_for_ask(folder: Path, model) -> None:
    scene, chunks = run_chunked_vision_pass(model, folder, num_frames=12, options=ChunkOptions(6, 2), tokens=True)
    assert [(c.start, c.stop) for c in chunks] == [(0, 6), (4, 10), (6, 12)]
    enc = scene.encoding
    assert scene.reconstruction.num_frames == 12 and enc.geometry.depth.shape[0] == 12
    assert 0 < len(enc.tokens) <= model.config.language.token_budget
    assert enc.tokens.shape[0] == enc.xyz.shape[0] and bool(np.isfinite(enc.xyz.numpy()).all())
    # pooled token positions lie inside the merged point cloud's extent (they were moved into the global world)
    pts = scene.reconstruction.world_points.reshape(-1, 3)
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    inside = ((enc.xyz.numpy() >= lo - 0.5) & (enc.xyz.numpy() <= hi + 0.5)).all(1)
    assert inside.mean() > 0.9
