"""`vidllm reconstruct` end to end with a fake model: outputs, --json summary, and no partial files on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from tests.fixtures import TINY_A
from tests.fixtures.tiny_a_weights import tiny_a_weights
from vidllm_cli import reconstruct as cli_mod
from vidllm_cli.main import app
from vidllm_core.convert.vggt_adapter import OfficialVGGTAdapter
from vidllm_core.export import read_ply_vertices
from vidllm_core.models.vidllm import SceneGeometry

BROKEN = ["missing", "empty", "truncated", "truncated_faststart", "random", "text"]  # files made in conftest


class FakeModel:
    """Answers `reconstruct` like VidLLM: a camera moving along x, depth from the image, exact unprojection."""

    def __init__(self, mode: str = "crop", image_size: int = 56, num_frames: int = 6) -> None:
        self.preprocess_config = SimpleNamespace(mode=mode, image_size=image_size, num_frames=num_frames)
        self.seen: list[torch.Tensor] = []

    def reconstruct(self, images: torch.Tensor) -> SceneGeometry:
        self.seen.append(images)
        S, _, H, W = images.shape
        depth = 1.0 + images.mean(1)
        conf = 1.0 + images[:, 0] + torch.linspace(0, 1, H * W).reshape(1, H, W)
        extrinsic = torch.zeros(S, 3, 4)
        extrinsic[:, :, :3] = torch.eye(3)
        extrinsic[:, 0, 3] = -0.1 * torch.arange(S)  # camera centre at x = +0.1 i
        K = torch.tensor([[float(W), 0.0, W / 2], [0.0, float(W), H / 2], [0.0, 0.0, 1.0]]).expand(S, 3, 3)
        v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                              indexing="ij")
        cam = torch.stack([(u - W / 2) * depth / W, (v - H / 2) * depth / W, depth], dim=-1)
        world = cam - extrinsic[:, None, None, :, 3]
        return SceneGeometry(depth=depth, depth_conf=conf, extrinsic=extrinsic, intrinsic=K.clone(),
                             world_points=world, scale=2.5, metric=True)


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    model = FakeModel()
    monkeypatch.setattr(cli_mod, "load_model", lambda model_dir, vggt, device: model)
    return model


def _run(*args: str):
    return CliRunner().invoke(app, ["reconstruct", *map(str, args)])


def test_writes_ply_cameras_depth_and_json(fake: FakeModel, media: dict[str, Path], tmp_path: Path,
                                           list_files) -> None:
    out = tmp_path / "out"
    result = _run(media["good"], "-o", out / "room.ply", "--cameras", out / "cams.json", "--depth-dir",
                  out / "depth", "--model", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    images = fake.seen[0]
    S, _, H, W = images.shape
    assert (S, H, W) == (6, 42, 56)  # crop mode at 56: 160x120 -> 56x42
    assert summary["frames"] == 6 and summary["resolution"] == [56, 42] and summary["source_resolution"] == [160, 120]
    assert summary["source_frames"] == [0, 5, 9, 14, 18, 23] and summary["scale"] == 2.5 and summary["metric"] is True
    assert summary["backend"] == "decord" and set(summary["timings"]) >= {"read_s", "network_s", "write_s", "total_s"}
    assert summary["outputs"] == {"ply": str(out / "room.ply"), "cameras": str(out / "cams.json"),
                                  "depth_dir": str(out / "depth"), "export_dir": None, "preview": None}

    ply = read_ply_vertices(out / "room.ply")
    pts = np.stack([ply["x"], ply["y"], ply["z"]], 1)
    pred = fake.reconstruct(images)
    conf = pred.depth_conf.reshape(-1).numpy()
    assert len(pts) == summary["points"] == (conf >= np.percentile(conf, 50)).sum()  # default: top 50 %
    assert abs(len(pts) - S * H * W / 2) <= 3
    world = pred.world_points.reshape(-1, 3).numpy()
    dist, idx = cKDTree(world).query(pts)
    assert dist.max() < 1e-5  # every written point is a predicted world point ...
    np.testing.assert_allclose(ply["confidence"], conf[idx], rtol=1e-6)  # ... with its confidence
    assert ply["confidence"].min() >= np.median(conf) - 1e-6
    colors = (images.permute(0, 2, 3, 1).reshape(-1, 3) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.stack([ply["red"], ply["green"], ply["blue"]], 1), colors[idx])

    cams = json.loads((out / "cams.json").read_text())
    assert cams["metric"] is True and cams["units"] == "metres" and len(cams["frames"]) == 6
    assert [f["source_frame"] for f in cams["frames"]] == summary["source_frames"]
    np.testing.assert_allclose([f["timestamp"] for f in cams["frames"]], np.array(summary["source_frames"]) / 12,
                               atol=1e-4)
    centres = np.array([f["camera_to_world"] for f in cams["frames"]])[:, :3, 3]
    np.testing.assert_allclose(centres[:, 0], 0.1 * np.arange(6), atol=1e-6)
    assert cams["frames"][0]["intrinsics"][0][0] == 56.0 and (cams["width"], cams["height"]) == (56, 42)

    from PIL import Image

    pngs = sorted((out / "depth").iterdir())
    assert [p.name for p in pngs] == [f"depth_{i:04d}.png" for i in range(6)]
    mm = np.asarray(Image.open(pngs[2]))
    assert np.array_equal(mm, np.round(pred.depth[2].numpy().astype(np.float64) * 1000).astype(np.uint16))
    assert list_files(out) == sorted(["room.ply", "cams.json", "depth"] + [f"depth/{p.name}" for p in pngs])


def test_image_folder_and_frames_option(fake: FakeModel, image_dir: Path, tmp_path: Path) -> None:
    result = _run(image_dir, "-o", tmp_path / "a.ply", "--frames", "3", "--model", tmp_path, "--json",
                  "--conf-percentile", "0")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames"] == 3 and summary["backend"] == "images" and summary["source_frames"] == [0, 6, 11]
    assert summary["points"] == 3 * 42 * 56


def test_pad_mode_writes_no_padding_points(monkeypatch: pytest.MonkeyPatch, media: dict[str, Path],
                                           tmp_path: Path) -> None:
    model = FakeModel(mode="pad", image_size=56, num_frames=2)
    monkeypatch.setattr(cli_mod, "load_model", lambda *a: model)
    result = _run(media["good"], "-o", tmp_path / "p.ply", "--conf-percentile", "0", "--json", "--model", tmp_path)
    assert result.exit_code == 0, result.output
    assert model.seen[0].shape[-2:] == (56, 56)
    assert json.loads(result.stdout)["points"] == 2 * 42 * 56  # the 14 white rows are not points


def test_human_output(fake: FakeModel, media: dict[str, Path], tmp_path: Path) -> None:
    result = _run(media["good"], "-o", tmp_path / "a.ply", "--model", tmp_path)
    assert result.exit_code == 0, result.output
    assert "points to" in result.stderr and "metres" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("name", BROKEN)
def test_bad_video_one_line_and_no_partial_output(list_files, fake: FakeModel, media: dict[str, Path], tmp_path: Path,
                                                  name: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = _run(media[name], "-o", out / "x.ply", "--cameras", out / "c.json", "--depth-dir", out / "d",
                  "--model", tmp_path)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(media[name]) in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert list_files(out) == []


def test_failure_while_writing_leaves_no_output(list_files, fake: FakeModel, media: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vidllm_core.pipelines.outputs.write_depth_pngs", full_disk)  # the last writer fails
    out = tmp_path / "out"
    result = _run(media["good"], "-o", out / "x.ply", "--cameras", out / "c.json", "--depth-dir", out / "d",
                  "--model", tmp_path)
    assert result.exit_code != 0 and result.stderr.strip().splitlines()[-1].startswith("error: no space left")
    assert list_files(out) == []  # the PLY and cameras staged before it were removed too


def test_non_finite_network_output_fails_cleanly(list_files, monkeypatch: pytest.MonkeyPatch, media: dict[str, Path],
                                                  tmp_path: Path) -> None:
    model = FakeModel()
    real = model.reconstruct

    def zero_fov(images: torch.Tensor) -> SceneGeometry:
        out = real(images)
        out.intrinsic[1, 0, 0] = float("inf")  # what fov = 0 gives: fx = (W/2) / tan(0)
        return out

    model.reconstruct = zero_fov
    monkeypatch.setattr(cli_mod, "load_model", lambda *a: model)
    result = _run(media["good"], "-o", tmp_path / "x.ply", "--cameras", tmp_path / "c.json", "--model", tmp_path)
    assert result.exit_code != 0
    assert "non-finite intrinsic values for frame(s) 1" in result.stderr.strip().splitlines()[-1]
    assert list_files(tmp_path) == []


def test_no_model_asks_for_one(list_files, media: dict[str, Path], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --model the shipped demo model is used; an install without one fails in one line."""
    import vidllm_core.assets

    monkeypatch.setattr(vidllm_core.assets, "DEMO_MODEL_DIR", tmp_path / "no-demo-model")
    result = _run(media["good"], "-o", tmp_path / "x.ply")
    assert result.exit_code != 0 and "--model DIR" in result.stderr and "no shipped demo model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list_files(tmp_path) == []


def test_default_model_is_the_shipped_one(fake: FakeModel, media: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No --model / --vggt: `load_model` is given the shipped demo model directory."""
    from vidllm_core.assets import default_model_dir

    seen = []
    monkeypatch.setattr(cli_mod, "load_model", lambda model_dir, vggt, device: seen.append(
        cli_mod.resolve_model(model_dir, vggt)) or fake)
    result = _run(media["good"], "-o", tmp_path / "x.ply")
    assert result.exit_code == 0, result.output
    assert default_model_dir() is not None and seen == [default_model_dir()]


def test_missing_model_dir(media: dict[str, Path], tmp_path: Path) -> None:
    result = _run(media["good"], "-o", tmp_path / "x.ply", "--model", tmp_path / "nope")
    assert result.exit_code != 0 and "model directory not found" in result.stderr


def test_unwritable_output_location(fake: FakeModel, media: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    for args in (["-o", blocker / "x.ply"], ["-o", tmp_path / "x.ply", "--cameras", blocker / "sub" / "c.json"]):
        result = _run(media["good"], *args)
        assert result.exit_code != 0 and "not a folder" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_unwritable_folder(fake: FakeModel, media: dict[str, Path], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("vidllm_core.io.tempfile.TemporaryFile", denied)  # root ignores chmod; simulate it
    result = _run(media["good"], "-o", tmp_path / "x.ply")
    assert result.exit_code != 0 and "cannot write to point cloud" in result.stderr and "Permission denied" in result.stderr


def test_bad_options(fake: FakeModel, media: dict[str, Path], tmp_path: Path) -> None:
    assert "must end in .ply" in _run(media["good"], "-o", tmp_path / "x.obj").stderr
    assert _run(media["good"], "-o", tmp_path / "x.ply", "--frames", "0").exit_code != 0
    assert "--device must be" in _run(media["good"], "-o", tmp_path / "x.ply", "--device", "tpu").stderr
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("x")
    result = _run(media["good"], "-o", tmp_path / "x.ply", "--depth-dir", tmp_path / "d", "--model", tmp_path)
    assert "refusing to replace" in result.stderr and not (tmp_path / "x.ply").exists()


def test_tiny_random_model_end_to_end(media: dict[str, Path], tmp_path: Path) -> None:
    """The real network (tiny preset, random weights) through `--model DIR`; skipped until the model exists."""
    vidllm = pytest.importorskip("vidllm_core.models.vidllm", reason="VidLLM model not built yet")
    from vidllm_core.config import VidLLMConfig

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny"
    vidllm.VidLLM(VidLLMConfig.from_name("tiny")).save_pretrained(model_dir)
    out = tmp_path / "out"
    result = _run(media["good"], "-o", out / "room.ply", "--cameras", out / "cams.json", "--model", model_dir,
                  "--frames", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    ply = read_ply_vertices(out / "room.ply")
    assert len(ply["x"]) == summary["points"] > 0 and np.isfinite(ply["x"]).all()
    cams = json.loads((out / "cams.json").read_text())
    assert len(cams["frames"]) == summary["frames"] == 2


def test_official_vggt_adapter_relative_scale(monkeypatch: pytest.MonkeyPatch, media: dict[str, Path],
                                              tmp_path: Path) -> None:
    """The --vggt path on the tiny official-format fixture: VGGT outputs -> cameras, depth, relative units."""
    convert = pytest.importorskip("vidllm_core.convert.vggt")
    fixture = TINY_A
    config = json.loads((fixture / "config.json").read_text())["model"]
    net = convert.build_from_official(config, tiny_a_weights()).eval()
    adapter = OfficialVGGTAdapter(net)
    adapter.preprocess_config = SimpleNamespace(mode="crop", image_size=56, num_frames=2)
    monkeypatch.setattr(cli_mod, "load_model", lambda *a: adapter)
    out = tmp_path / "out"
    result = _run(media["good"], "-o", out / "x.ply", "--cameras", out / "c.json", "--vggt", fixture / "config.json",
                  "--json", "--conf-percentile", "0")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["metric"] is False and summary["scale"] == 1.0 and summary["resolution"] == [56, 42]
    cams = json.loads((out / "c.json").read_text())
    assert cams["units"].startswith("relative") and len(cams["frames"]) == 2
    c2w = np.array([f["camera_to_world"] for f in cams["frames"]])
    assert np.allclose(c2w[:, 3], [0, 0, 0, 1]) and np.allclose(c2w[:, :3, :3] @ c2w[:, :3, :3].transpose(0, 2, 1),
                                                                np.eye(3), atol=1e-5)
    K = np.array(cams["frames"][0]["intrinsics"])
    assert K[0, 2] == 28.0 and K[1, 2] == 21.0 and np.isfinite(K).all()  # principal point at (W/2, H/2)
    ply = read_ply_vertices(out / "x.ply")
    assert len(ply["x"]) == summary["points"] == 2 * 42 * 56
