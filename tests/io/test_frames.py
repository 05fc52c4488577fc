"""Frame sources (video file, image folder, ScanNet posed-images scene) and the input bugs of issue 13: ScanNet
folders read their colour frames, 16-bit grey PNGs are scaled, display rotation is honoured by both video backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidllm_core.data.frames import (ImageFolderSource, ScanNetSceneSource, VideoFileSource, is_scannet_scene_folder,
                                     open_frame_source)
from vidllm_core.errors import DataError, VideoError

W, H, N = 32, 24, 6


def make_scannet_scene(root: Path, num: int = N, broken_pose: int | None = 0) -> tuple[Path, np.ndarray]:
    """A posed-images scene: NNNNN.jpg colour (grey level 30 i), NNNNN.png uint16 depth (1000 + 100 i mm),
    NNNNN.txt camera-to-world (camera i at x = 0.5 i, yawed), intrinsics; frame `broken_pose` has an -inf pose."""
    root.mkdir(parents=True)
    poses = np.zeros((num, 4, 4))
    for i in range(num):
        Image.fromarray(np.full((H, W, 3), 30 * i, np.uint8)).save(root / f"{i:05d}.jpg", quality=100)
        Image.fromarray(np.full((H // 2, W // 2), 1000 + 100 * i, np.uint16)).save(root / f"{i:05d}.png")
        a = 0.2 * i
        pose = np.eye(4)
        pose[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        pose[:3, 3] = [0.5 * i, 0.1, 1.0]
        poses[i] = pose
        np.savetxt(root / f"{i:05d}.txt", np.full((4, 4), -np.inf) if i == broken_pose else pose)
    np.savetxt(root / "intrinsic.txt", np.array([[30.0, 0, 16, 0], [0, 30, 12, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    np.savetxt(root / "depth_intrinsic.txt", np.array([[15.0, 0, 8, 0], [0, 15, 6, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    return root, poses


def test_video_file_source(media: dict[str, Path], source_frames) -> None:  # noqa: ANN001
    src = open_frame_source(media["good"])
    assert isinstance(src, VideoFileSource) and len(src) == 24
    frames = src.read(4)
    assert frames.images.dtype == np.uint8 and frames.images.shape == (4, 120, 160, 3)
    assert frames.ids == ("0", "8", "15", "23") and src.ground_truth(frames) is None
    assert np.abs(frames.images.astype(int) - source_frames()[frames.indices]).mean() < 6  # H.264 error only
    assert src.fingerprint() == open_frame_source(media["good"]).fingerprint()
    with pytest.raises(VideoError, match="file is empty"):
        open_frame_source(media["empty"])


def test_image_folder_source(image_dir: Path) -> None:
    src = open_frame_source(image_dir)
    assert isinstance(src, ImageFolderSource) and not is_scannet_scene_folder(image_dir)
    frames = src.read(3)
    assert frames.backend == "images" and frames.ids == ("frame1.png", "frame7.png", "frame12.png")  # natural order
    assert src.ground_truth(frames) is None and len(src) == 12


def test_scannet_scene_reads_colour_frames_with_ground_truth(tmp_path: Path) -> None:
    root, poses = make_scannet_scene(tmp_path / "posed_images" / "scene0000_00")
    src = open_frame_source(root)
    assert isinstance(src, ScanNetSceneSource) and len(src) == N
    frames = src.read(3)
    assert frames.ids == ("00000", "00002", "00005") and frames.images.shape == (3, H, W, 3)
    # the colour JPEGs, not the 16-bit depth PNGs (those would read as white frames)
    np.testing.assert_allclose(frames.images.reshape(3, -1).mean(1), [0, 60, 150], atol=2)
    gt = src.ground_truth(frames)
    assert not gt.has_pose(0) and np.isnan(gt.poses[0]).all()          # the -inf tracking failure
    np.testing.assert_allclose(gt.poses[1:], poses[[2, 5]])
    np.testing.assert_allclose(gt.depth(1), np.full((H // 2, W // 2), 1.2, np.float32))   # metres
    assert gt.depth_size(2) == (W // 2, H // 2) and gt.intrinsic_color[0, 0] == 30.0
    # depth PNGs and colour JPEGs of the same numbers make a scene even without intrinsics or poses
    (root / "intrinsic.txt").unlink()
    for p in root.glob("*.txt"):
        p.unlink()
    assert is_scannet_scene_folder(root)
    # ... but each frame saved as .jpg and as an RGB .png is an image folder
    plain = tmp_path / "both"
    plain.mkdir()
    for i in range(3):
        Image.fromarray(np.full((H, W, 3), 9, np.uint8)).save(plain / f"{i:05d}.jpg")
        Image.fromarray(np.full((H, W, 3), 9, np.uint8)).save(plain / f"{i:05d}.png")
    assert isinstance(open_frame_source(plain), ImageFolderSource)


def _scene_model():  # noqa: ANN202
    """A fake vision model whose cameras are the GT cameras relative to the first sampled one."""
    import torch
    from types import SimpleNamespace

    from vidllm_core.models.vidllm import SceneGeometry

    class Model:
        preprocess_config = SimpleNamespace(mode="crop", image_size=28, num_frames=3, patch_size=14)
        rel: np.ndarray
        seen: list = []

        def reconstruct(self, images: torch.Tensor) -> SceneGeometry:
            self.seen.append(images)
            S, _, h, w = images.shape
            ext = torch.tensor(self.rel[:, :3], dtype=torch.float32)
            K = torch.tensor([[20.0, 0, w / 2], [0, 20, h / 2], [0, 0, 1]]).expand(S, 3, 3)
            return SceneGeometry(torch.ones(S, h, w), torch.ones(S, h, w), ext, K.clone(), torch.zeros(S, h, w, 3),
                                 1.0, True)

    return Model()


def test_vision_pass_places_a_posed_scene_in_its_ground_truth_frame(tmp_path: Path) -> None:
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    root, poses = make_scannet_scene(tmp_path / "scene0001_00")
    model = _scene_model()
    chosen = poses[[0, 2, 5]]
    model.rel = np.linalg.inv(chosen) @ chosen[0]               # world-from-... : camera i from camera 0
    scene = run_vision_pass(model, root)
    assert scene.source.kind == "scannet" and scene.frame_ids == ["00000", "00002", "00005"]
    assert float(model.seen[0].mean()) < 0.6                      # colour frames, not white depth PNGs
    place = scene.require_placement()
    assert place.anchor == 1 and place.anchor_id == "00002"       # frame 0's pose is -inf
    placed = place.to_gt @ scene.reconstruction.camera_to_world()
    np.testing.assert_allclose(placed, chosen, atol=1e-5)         # every camera lands on its GT pose
    from vidllm_core.pipelines.gt_report import ground_truth_report

    report = ground_truth_report(scene)                           # the source's GT, as commands print it
    assert report["anchor_frame"] == "00002" and report["camera_centre_error_m"]["max"] < 1e-4
    assert report["camera_centre_error_m"]["frames"] == 2
    # predicted depth 1 m everywhere against GT 1.0 / 1.2 / 1.5 m
    assert report["depth"]["AbsRel"] == pytest.approx((0 + 0.2 / 1.2 + 0.5 / 1.5) / 3, abs=1e-3)
    assert report["depth"]["n_images"] == 3
    (root / "00005.png").write_bytes(b"not a png")                # an unreadable GT depth: said, not fatal
    assert "unreadable depth image" in ground_truth_report(scene)["depth"]["error"]
    with pytest.raises(DataError, match="no axis alignment"):     # never a silent identity
        place.to_scene
    align = np.eye(4)
    align[:3, 3] = [1.0, 2.0, 3.0]
    (root / "scene0001_00.txt").write_text("axisAlignment = " + " ".join(map(str, align.ravel())) + "\n")
    place = run_vision_pass(model, root).require_placement()
    np.testing.assert_allclose(place.to_scene, align @ place.to_gt)


def test_reconstruct_cli_reads_a_scannet_scene_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vidllm reconstruct posed_images/<scene>`: colour frames in, the source's GT placement and errors out."""
    import json

    from typer.testing import CliRunner

    from vidllm_cli import reconstruct as cli_mod
    from vidllm_cli.main import app

    root, poses = make_scannet_scene(tmp_path / "posed_images" / "scene0002_00")
    model = _scene_model()
    chosen = poses[[0, 2, 5]]
    model.rel = np.linalg.inv(chosen) @ chosen[0]
    monkeypatch.setattr(cli_mod, "load_model", lambda *a: model)
    res = CliRunner().invoke(app, ["reconstruct", str(root), "-o", str(tmp_path / "out.ply"), "--model",
                                   str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["backend"] == "scannet" and summary["source_frames"] == [0, 2, 5]
    assert float(model.seen[-1].mean()) < 0.6                     # the JPEGs, not the white 16-bit depth PNGs
    assert summary["ground_truth"]["anchor_frame"] == "00002"
    assert summary["ground_truth"]["camera_centre_error_m"]["max"] < 1e-4


def test_16_bit_grey_png_is_scaled_not_white(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, value in enumerate((0, 1000, 40000, 65535)):
        Image.fromarray(np.full((H, W), value, np.uint16)).save(folder / f"f{i}.png")
    frames = open_frame_source(folder).read(4)
    assert frames.images.dtype == np.uint8
    assert frames.images[:, 0, 0].tolist() == [[0] * 3, [3] * 3, [156] * 3, [255] * 3]   # value >> 8
    # the same rule Pillow applies to 48-bit RGB PNGs, so both 16-bit kinds agree
    from vidllm_core.data.preprocess import preprocess_images

    grey = Image.open(folder / "f2.png")
    assert grey.mode.startswith("I;16")
    assert float(preprocess_images([grey], "crop", 28)[0].mean()) == pytest.approx(156 / 255, abs=1e-6)


def _rotated_video(path: Path, frames: np.ndarray, degrees: int) -> Path:
    """An H.264 mp4 of `frames` with a display-matrix rotation of `degrees` (what phones write), via ffmpeg."""
    import subprocess

    import imageio_ffmpeg

    from tests.io.conftest import write_mp4_imageio

    plain = path.with_name("plain_" + path.name)
    write_mp4_imageio(plain, frames)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-display_rotation", str(degrees),
                    "-i", str(plain), "-c", "copy", str(path)], check=True)
    return path


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_honoured_by_both_backends(tmp_path: Path, source_frames,  # noqa: ANN001
                                                        degrees: int) -> None:
    import av

    frames = source_frames(8)
    video = _rotated_video(tmp_path / f"rot{degrees}.mp4", frames, degrees)
    with av.open(str(video)) as c:
        assert next(c.decode(c.streams.video[0])).rotation % 360 == degrees % 360   # the tag is really there
    pyav = open_frame_source(video, backend="pyav").read(4)
    upright = np.rot90(frames[pyav.indices], degrees // 90, axes=(1, 2))            # counter-clockwise
    assert pyav.images.shape == upright.shape
    assert np.abs(pyav.images.astype(int) - upright).mean() < 6
    pytest.importorskip("decord")
    decord = open_frame_source(video, backend="decord").read(4)
    assert decord.backend == "decord" and np.array_equal(decord.indices, pyav.indices)
    assert np.array_equal(decord.images, pyav.images)


def test_one_finiteness_check_names_the_input(tmp_path: Path, media: dict[str, Path]) -> None:
    """Non-finite 3D tokens (or geometry) from `encode_scene` are one CheckpointError naming the input."""
    import torch

    from vidllm_core.errors import CheckpointError
    from vidllm_core.models.vidllm import SceneEncoding
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    model = _scene_model()

    def encode_scene(images: torch.Tensor) -> SceneEncoding:
        model.rel = np.repeat(np.eye(4)[None], len(images), 0)
        tokens = torch.zeros(3, 4)
        tokens[1, 2] = float("nan")
        return SceneEncoding(tokens, torch.zeros(3, 3), torch.ones(3, dtype=torch.bool), model.reconstruct(images))

    model.encode_scene = encode_scene
    with pytest.raises(CheckpointError, match=r"good\.mp4: the network predicted non-finite 3D tokens"):
        run_vision_pass(model, media["good"], tokens=True)
