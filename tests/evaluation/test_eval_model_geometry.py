"""`vidllm eval depth|pose|recon --model`: the tiny random model end to end on two `vidllm synth` scenes, an oracle
model that must score (near) perfectly through the whole pipeline, resuming, the no-alignment baseline, and bad
input as one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.data.benchmarks import open_scene
from vidllm_core.data.preprocess import ResizeInfo, preprocess_with_info
from vidllm_core.data.video import sample_indices
from vidllm_core.evaluation import geometry, model_geometry
from vidllm_core.models.vidllm import SceneGeometry
from vidllm_core.pipelines import reconstruct as pipeline
from vidllm_core.pipelines import vision_pass

runner = CliRunner()
SCENES = ["synth0000_00", "synth0001_00"]
DEPTH_KEYS = {"delta1", "delta2", "delta3", "AbsRel", "SqRel", "RMSE", "RMSE_log", "log10", "SILog"}
POSE_KEYS = {"RRA@5", "RTA@5", "RRA@15", "RTA@15", "RRA@30", "RTA@30", "AUC@5", "AUC@15", "AUC@30", "n_pairs"}
RECON_KEYS = {"Acc", "Comp", "Prec", "Recall", "F-score"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two synthrooms scenes (4 frames of 64x48) with their GT mesh beside the posed images, and a tiny model."""
    root = tmp_path_factory.mktemp("geo")
    res = runner.invoke(app, ["synth", str(root / "synth"), "--scenes", "2", "--seed", "0", "--frames", "4",
                              "--size", "64x48", "--no-video"])
    assert res.exit_code == 0, res.output
    posed = root / "synth" / "posed_images"
    assert all((posed / sid / "mesh.ply").is_file() for sid in SCENES)  # recon GT beside the frames
    (root / "list.txt").write_text("\n".join(SCENES) + "\n")
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.vidllm import VidLLM

    torch.manual_seed(0)
    VidLLM(VidLLMConfig.from_name("tiny")).save_pretrained(root / "tiny")
    return SimpleNamespace(root=root, scenes=posed, list=root / "list.txt", model=root / "tiny")


@pytest.fixture(autouse=True)
def coarse_gt_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse GT surface sampling (5 cm apart) keeps the recon tests fast (the voxel down-sampling dominates)."""
    monkeypatch.setattr(geometry, "MESH_SAMPLES_PER_M2", 400)


def evaluate(task: str, d: SimpleNamespace, out: Path, *extra: object):
    return runner.invoke(app, ["eval", task, "-a", str(d.list), "--scenes", str(d.scenes), "-o", str(out),
                               "--json", *map(str, extra)])


def evaluate_tiny(task: str, d: SimpleNamespace, out: Path, *extra: object):
    """The tiny model on 2 of the 4 frames of each scene (its forward pass dominates the test time)."""
    return evaluate(task, d, out, "--model", d.model, "--frames", 2, *extra)


def one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def finite_numbers(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))


# --- the tiny random model end to end ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_runs(data: SimpleNamespace) -> Path:
    """depth, pose and recon with the tiny random model, once per module (OUT dirs under runs/<task>)."""
    runs = data.root / "runs"
    mp = pytest.MonkeyPatch()
    mp.setattr(geometry, "MESH_SAMPLES_PER_M2", 400)
    try:
        for task in ("depth", "pose", "recon"):
            res = evaluate_tiny(task, data, runs / task)
            assert res.exit_code == 0, res.output
            (runs / task / "stdout.json").write_text(res.stdout)
    finally:
        mp.undo()
    return runs


def test_tiny_model_all_geometry_tasks(data: SimpleNamespace, tiny_runs: Path) -> None:
    tmp_path = tiny_runs
    for task, keys in (("depth", DEPTH_KEYS), ("pose", POSE_KEYS), ("recon", RECON_KEYS)):
        metrics = json.loads((tmp_path / task / "stdout.json").read_text())
        assert keys <= set(metrics) and finite_numbers(metrics), metrics
        assert metrics["n_scenes"] == metrics["n_scenes_total"] == 2
        doc = json.loads((tmp_path / task / "metrics.json").read_text())
        assert doc["task"] == task and doc["run"]["source"] == "model" and doc["run"]["model_variant"] is None
        assert doc["metrics"] == metrics and doc["predictions"]["matched"] == 2
        lines = [json.loads(x) for x in (tmp_path / task / "predictions.jsonl").read_text().splitlines()]
        assert [r["scene_id"] for r in lines] == SCENES and all(Path(r["path"]).exists() for r in lines)
        meta = json.loads((tmp_path / task / "predictions" / SCENES[0] / "meta.json").read_text())
        assert meta["frames"] == ["00000", "00003"] and meta["anchor_frame"] == "00000"   # uniform: first, last
        assert meta["metric"] is True and meta["num_frames"] == 2 and doc["run"]["frames"] == 2
    depth = json.loads((tmp_path / "depth" / "metrics.json").read_text())["metrics"]
    assert DEPTH_KEYS <= set(depth["median_aligned"]) and depth["n_images"] == 4 and depth["align"] == "none"
    assert json.loads((tmp_path / "pose" / "metrics.json").read_text())["metrics"]["n_pairs"] == 2    # 2 x C(2,2)
    # depth PNGs are written at the GT depth resolution, cameras in the GT world (anchor frame = its GT pose)
    from PIL import Image

    png = tmp_path / "depth" / "predictions" / SCENES[0] / "depth" / "00003.png"
    assert Image.open(png).size == (64, 48)
    cams = json.loads((tmp_path / "pose" / "predictions" / SCENES[0] / "cameras.json").read_text())
    gt0 = open_scene(data.scenes, SCENES[0]).pose(open_scene(data.scenes, SCENES[0]).frames[0])
    np.testing.assert_allclose(np.asarray(cams["00000"]), gt0, atol=1e-5)
    assert list(tmp_path.glob("*/predictions/.*")) == []   # no temporary leftovers


# --- an oracle model: the whole chain (sampling, preprocessing maps, anchor transform, writers) must be exact -----

class OracleModel:
    """Answers `reconstruct` with the GT of the scenes it is given, in order: each network pixel's depth is the GT
    depth at the source pixel it comes from, cameras are the GT ones relative to the first frame (the model's
    world), points are exact unprojections."""

    def __init__(self, scenes_dir: Path, scene_ids: list[str], num_frames: int = 4) -> None:
        self.preprocess_config = SimpleNamespace(mode="short_side", image_size=56, num_frames=num_frames)
        self.scenes_dir, self.queue = scenes_dir, list(scene_ids)

    def reconstruct(self, images: torch.Tensor) -> SceneGeometry:
        scene = open_scene(self.scenes_dir, self.queue.pop(0))
        S, _, H, W = images.shape
        frames = [scene.frames[i] for i in sample_indices(len(scene.frames), self.preprocess_config.num_frames)]
        ref, infos = preprocess_with_info([scene.color(f) for f in frames], "short_side", 56, 14)
        assert torch.equal(ref, images)                   # the eval fed exactly these frames
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        c2w0 = scene.pose(frames[0])
        depth, ext, intr, world = [], [], [], []
        for f, info in zip(frames, infos):
            gt = scene.depth(f)
            xs, ys = info.output_to_source(u, v)
            xi = np.clip(np.round(xs), 0, gt.shape[1] - 1).astype(int)
            yi = np.clip(np.round(ys), 0, gt.shape[0] - 1).astype(int)
            d = gt[yi, xi].astype(np.float64)
            k_src = scene.intrinsic_color[:3, :3]
            sx, sy = info.source_width / info.resized_width, info.source_height / info.resized_height
            k = np.array([[k_src[0, 0] / sx, 0, (k_src[0, 2] + 0.5) / sx - 0.5 + info.pad_left - info.crop_left],
                          [0, k_src[1, 1] / sy, (k_src[1, 2] + 0.5) / sy - 0.5 + info.pad_top - info.crop_top],
                          [0, 0, 1]])
            w2c = np.linalg.inv(scene.pose(f)) @ c2w0         # camera i from the first camera
            cam = np.stack([(u - k[0, 2]) / k[0, 0] * d, (v - k[1, 2]) / k[1, 1] * d, d], -1)
            c2w = np.linalg.inv(w2c)
            world.append(cam @ c2w[:3, :3].T + c2w[:3, 3])
            depth.append(d)
            ext.append(w2c[:3])
            intr.append(k)
        t = lambda a: torch.tensor(np.stack(a), dtype=torch.float32)  # noqa: E731
        return SceneGeometry(depth=t(depth), depth_conf=torch.ones(S, H, W), extrinsic=t(ext), intrinsic=t(intr),
                             world_points=t(world), scale=1.0, metric=True)


def test_oracle_model_scores_near_perfect(data: SimpleNamespace, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geometry, "MESH_SAMPLES_PER_M2", 1000)   # about 3 cm apart: dense enough for Prec / Acc
    got = {}
    for task in ("depth", "pose", "recon"):
        oracle = OracleModel(data.scenes, SCENES)
        monkeypatch.setattr(model_geometry, "load_model", lambda model_dir, ctx, language=True, o=oracle: o)
        res = evaluate(task, data, tmp_path / task, "--model", data.model)
        assert res.exit_code == 0, res.output
        got[task] = json.loads(res.stdout)
    # measured: delta1 0.993, AbsRel 0.010 (nearest GT sampling + bilinear resampling at 64x48 edges)
    assert got["depth"]["delta1"] > 0.98 and got["depth"]["AbsRel"] < 0.02, got["depth"]
    assert got["pose"]["RRA@5"] == got["pose"]["RTA@5"] == 1.0 and got["pose"]["AUC@5"] > 0.95, got["pose"]
    # 4 frames of a room: precise (Prec 0.997, Acc 2 cm against 3 cm-spaced GT samples) but far from complete
    # (Recall 0.33); points left in the model's first-camera frame would give Prec ~ 0
    assert got["recon"]["Prec"] > 0.95 and got["recon"]["Acc"] < 0.03 and got["recon"]["Recall"] > 0.2, got["recon"]


# --- resuming ------------------------------------------------------------------------------------------------------

def test_interrupted_run_resumes_without_redoing_scenes(data: SimpleNamespace, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = vision_pass.run_vision_pass

    def counting(model, source, **kwargs):
        calls.append(len(source))
        if len(calls) == 2 and fail_second:
            raise OSError(28, "No space left on device")   # dies while the second scene is being made
        return real(model, source, **kwargs)

    monkeypatch.setattr(vision_pass, "run_vision_pass", counting)
    out = tmp_path / "out"
    fail_second = True
    first = evaluate_tiny("depth", data, out)
    assert first.exit_code != 0 and "no space left" in one_error_line(first)
    assert len(calls) == 2 and not (out / "metrics.json").exists()
    assert [json.loads(x)["scene_id"] for x in (out / "predictions.jsonl").read_text().splitlines()] == SCENES[:1]
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["run.json", SCENES[0]]   # no partial scene

    fail_second = False
    second = evaluate_tiny("depth", data, out)
    assert second.exit_code == 0, second.output
    assert len(calls) == 3                                     # only the missing scene was reconstructed
    third = evaluate_tiny("depth", data, out)
    assert third.exit_code == 0 and len(calls) == 3            # nothing left to do: scores only
    assert json.loads(third.stdout) == json.loads(second.stdout)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2

    # another model variant into the same directory is refused instead of mixing scenes
    (out / "predictions.jsonl").write_text((out / "predictions.jsonl").read_text().splitlines()[0] + "\n")
    mixed = evaluate_tiny("depth", data, out, "--baseline", "no-alignment")
    assert "holds predictions of another run" in one_error_line(mixed)


# --- the no-alignment baseline -------------------------------------------------------------------------------------

def test_no_alignment_baseline_runs_the_model_changed(data: SimpleNamespace, tiny_runs: Path, tmp_path: Path) -> None:
    aligned = json.loads((tiny_runs / "depth" / "stdout.json").read_text())
    plain = evaluate_tiny("depth", data, tmp_path / "b", "--baseline", "no-alignment")
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["AbsRel"] != aligned["AbsRel"]
    doc = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert doc["run"]["model_variant"] == "no-alignment" and doc["run"]["source"] == "model"
    meta = json.loads((tmp_path / "b" / "predictions" / SCENES[0] / "meta.json").read_text())
    assert meta["variant"] == "no-alignment"
    line = one_error_line(evaluate("depth", data, tmp_path / "c", "--baseline", "no-alignment"))
    assert "give --model DIR too" in line


# --- bad input -----------------------------------------------------------------------------------------------------

def test_bad_input_is_one_line(data: SimpleNamespace, tmp_path: Path) -> None:
    base = ["eval", "depth", "-a", str(data.list), "--model", str(data.model), "-o", str(tmp_path / "o")]
    line = one_error_line(runner.invoke(app, base + ["--scenes", str(tmp_path / "nope")]))
    assert "scenes directory not found" in line
    assert "needs --scenes" in one_error_line(runner.invoke(app, base))
    assert not (tmp_path / "o").exists()                       # nothing written before the inputs were checked

    empty = tmp_path / "scenes" / "scene0000_00"
    empty.mkdir(parents=True)
    np.savetxt(empty / "intrinsic.txt", np.eye(4))
    (tmp_path / "one.txt").write_text("scene0000_00\n")
    res = runner.invoke(app, ["eval", "pose", "-a", str(tmp_path / "one.txt"), "--scenes", str(tmp_path / "scenes"),
                              "--model", str(data.model), "-o", str(tmp_path / "o2")])
    assert "scene scene0000_00: no colour frames" in one_error_line(res)

    (tmp_path / "two.txt").write_text("scene0000_00\nscene0009_00\n")
    res = runner.invoke(app, ["eval", "recon", "-a", str(tmp_path / "two.txt"), "--scenes", str(data.scenes),
                              "--model", str(data.model), "-o", str(tmp_path / "o3")])
    assert "scene folder not found" in one_error_line(res)
    res = runner.invoke(app, ["eval", "recon", "-a", str(data.list), "--scenes", str(data.scenes),
                              "--model", str(tmp_path / "no_model"), "-o", str(tmp_path / "o4")])
    assert "model directory not found" in one_error_line(res)
    res = runner.invoke(app, ["eval", "recon", "-a", str(data.list), "--scenes", str(data.scenes),
                              "--model", str(data.model), "--device", "tpu", "-o", str(tmp_path / "o5")])
    assert "--device must be cpu or cuda" in one_error_line(res)


# --- the depth resampling map --------------------------------------------------------------------------------------

def test_depth_at_inverts_the_preprocessing_map() -> None:
    """A depth map equal to the network x coordinate, read back at a source pixel, gives where that pixel went."""
    info = ResizeInfo(source_width=100, source_height=60, resized_width=70, resized_height=42, crop_left=3,
                      crop_top=0, pad_left=0, pad_top=7, width=64, height=56)
    H, W = 56, 64
    u = np.broadcast_to(np.arange(W, dtype=np.float32), (1, H, W)).copy()
    rec = pipeline.Reconstruction(colors=np.zeros((1, H, W, 3), np.uint8), depth=u, depth_conf=np.ones((1, H, W)),
                                  extrinsic=np.zeros((1, 3, 4)), intrinsic=np.eye(3)[None],
                                  world_points=np.zeros((1, H, W, 3)), scale=1.0, metric=True, infos=[info],
                                  settings=pipeline.PreprocessSettings("crop", 64, 1, 14))
    out = rec.depth_at(0, 60, 100)
    x = np.arange(100, dtype=np.float64)
    expected = np.clip((x + 0.5) * 70 / 100 - 0.5 - 3, 0, W - 1)
    np.testing.assert_allclose(out[30], expected, atol=1e-5)
    assert rec.valid_mask()[0, :7].sum() == 0 and rec.valid_mask()[0, 7:49].all()   # pad rows are not content
    # through intrinsics: a target camera with half the focal length sees twice the field of view
    kt = np.array([[25.0, 0, 49.5], [0, 25, 29.5], [0, 0, 1]])
    ks = np.array([[50.0, 0, 49.5], [0, 50, 29.5], [0, 0, 1]])
    wide = rec.depth_at(0, 60, 100, kt, ks)
    xs = 50.0 * (x - 49.5) / 25.0 + 49.5
    np.testing.assert_allclose(wide[30], np.clip((xs + 0.5) * 0.7 - 0.5 - 3, 0, W - 1), atol=1e-5)
