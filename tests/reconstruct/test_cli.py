"""`vidllm reconstruct` with the shipped demo model: export folder, chunked long video, scale anchors, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.data.synth import SynthConfig, generate_dataset


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthrooms scene (ScanNet layout, 20 frames of 112x84)."""
    out = tmp_path_factory.mktemp("synth") / "out"
    generate_dataset(out, SynthConfig(scenes=1, seed=5, frames=20, width=112, height=84, video=False))
    return next((out / "posed_images").iterdir())


def run(*args: object):
    result = CliRunner().invoke(app, ["reconstruct", *map(str, args)])
    return result


def test_export_folder_opens_everywhere(scene: Path, tmp_path: Path) -> None:
    pycolmap = pytest.importorskip("pycolmap")
    import trimesh

    out = tmp_path / "export"
    result = run(scene, "-o", tmp_path / "room.ply", "--export", out, "--frames", 6, "--gravity-align", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["gravity_aligned"]["method"] in ("ransac", "cameras")
    assert summary["scale_source"]["source"] == "model"
    model = pycolmap.Reconstruction()
    model.read_binary(str(out / "sparse" / "0"))
    cams = json.loads((out / "cameras.json").read_text())
    assert len(model.images) == 6 and len(model.points3D) == summary["points"]
    for image in model.images.values():
        i = int(image.name[6:10])
        w2c = np.linalg.inv(np.array(cams["frames"][i]["camera_to_world"]))[:3]
        np.testing.assert_allclose(image.cam_from_world().matrix(), w2c, atol=1e-5)
        assert (out / "images" / image.name).is_file()
    assert cams["scale_source"]["source"] == "model" and cams["gravity_aligned"] is not None
    assert isinstance(trimesh.load(out / "scene.glb"), trimesh.Scene)
    assert len(json.loads((out / "transforms.json").read_text())["frames"]) == 6
    assert (out / "preview.png").stat().st_size > 1000
    # a second run replaces the earlier export; a foreign folder is refused
    assert run(scene, "-o", tmp_path / "room.ply", "--export", out, "--frames", 6).exit_code == 0
    result = run(scene, "-o", tmp_path / "room.ply", "--export", tmp_path, "--frames", 6)
    assert result.exit_code == 2 and "not an earlier vidllm export" in result.stderr


def test_chunked_run_covers_every_frame(scene: Path, tmp_path: Path) -> None:
    result = run(scene, "-o", tmp_path / "r.ply", "--cameras", tmp_path / "c.json", "--frames", 20,
                 "--chunk-frames", 8, "--overlap", 3, "--json")
    assert result.exit_code == 0, result.output
    chunks = json.loads(result.stdout)["chunks"]
    assert chunks["ranges"] == [[0, 8], [5, 13], [10, 18], [12, 20]]
    cams = json.loads((tmp_path / "c.json").read_text())
    assert [f["source_frame"] for f in cams["frames"]] == list(range(20))
    assert cams["chunks"]["count"] == 4


def test_smaller_budget_gives_more_chunks(scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidllm_core.pipelines import long_video

    monkeypatch.setattr(long_video, "current_rss_bytes", lambda: 300 * 2 ** 20)  # independent of the test runner
    counts = []
    for budget in ("0.55", "0.40"):  # ~11 MB per 112x84 frame: all 20 frames in one pass, then chunks of 8
        result = run(scene, "-o", tmp_path / "r.ply", "--frames", 20, "--max-memory-gb", budget, "--json")
        assert result.exit_code == 0, result.output
        counts.append(json.loads(result.stdout)["chunks"]["count"])
    assert 1 <= counts[0] < counts[1]


def test_known_distance_sets_the_scale(scene: Path, tmp_path: Path) -> None:
    result = run(scene, "-o", tmp_path / "r.ply", "--cameras", tmp_path / "c.json", "--frames", 6,
                 "--known-distance", "0,5,2.5", "--json")
    assert result.exit_code == 0, result.output
    cams = json.loads((tmp_path / "c.json").read_text())
    c2w = np.array([f["camera_to_world"] for f in cams["frames"]])
    assert np.linalg.norm(c2w[0, :3, 3] - c2w[5, :3, 3]) == pytest.approx(2.5, rel=1e-5)
    assert cams["scale_source"]["source"] == json.loads(result.stdout)["scale_source"]["source"] == "known-distance"
    assert cams["metric"] is True


@pytest.mark.parametrize("args, message", [
    (["--frames", 6, "--chunk-frames", 10], "chunk size 10 is larger than the video's 6 sampled frames"),
    (["--frames", 6, "--max-memory-gb", "0.01"], "memory budget 0.01 GB is too small"),
    (["--frames", 6, "--known-distance", "0,5,2", "--camera-height", "1.5"], "conflicting scale anchors"),
    (["--frames", 6, "--known-distance", "0,5,0"], "--known-distance must be a positive finite number"),
    (["--frames", 6, "--known-distance", "0,5,nan"], "--known-distance must be a positive finite number"),
    (["--frames", 6, "--chunk-align", "affine"], "chunk alignment must be one of sim3, se3"),
])
def test_bad_input_is_one_line(scene: Path, tmp_path: Path, args: list, message: str) -> None:
    result = run(scene, "-o", tmp_path / "r.ply", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "r.ply").exists()
