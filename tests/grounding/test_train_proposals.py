"""Stage 2 trains the proposal scorer (issue 12): proposals reach the grounding items in the clip's box frame, the
target proposal is the one of highest IoU, synthetic proposals are refused outside synthrooms, and a short run
logs the proposal loss and records the proposal source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.errors import ConfigError, DataError
from vidllm_core.metrics.grounding import box3d_iou_matrix
from vidllm_core.training.proposals import build_train_proposals, is_synthrooms_scene, synthetic_proposals

runner = CliRunner()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("props") / "synth"
    res = runner.invoke(app, ["synth", str(out), "--scenes", "2", "--seed", "3", "--frames", "4", "--size", "56x42",
                              "--no-video", "--split-ratios", "1,0,0"])
    assert res.exit_code == 0, res.output
    return out


def _gt(synth: Path) -> dict:
    from vidllm_core.data.benchmarks import load_gt_boxes_file

    return load_gt_boxes_file(synth / "annotations" / "gt_boxes.json")


def test_synthetic_proposals_hold_each_target_best(synth: Path) -> None:
    rng = np.random.default_rng(0)
    for boxes in _gt(synth).values():
        gt = np.asarray(list(boxes.values()))
        props = synthetic_proposals(gt, rng)
        assert props.shape == (len(gt) + 8, 6) and (props[:, 3:] > 0).all()
        iou = box3d_iou_matrix(props, gt)
        assert (iou.max(0) > 0.3).mean() >= 0.9   # jittered copies stay near their object


def test_clip_proposals_are_in_the_box_frame(synth: Path) -> None:
    from vidllm_core.training.data import SceneClips

    scenes = synth / "posed_images"
    ids = sorted(p.name for p in scenes.iterdir())
    assert all(is_synthrooms_scene(scenes / s) for s in ids)
    gt = _gt(synth)
    props, notes = build_train_proposals("synthetic", [scenes / s for s in ids], gt)
    assert "synthetic proposals" in notes[0]

    class Sample:
        task, prompt_box = "scanrefer", None

        def __init__(self, box: np.ndarray | None) -> None:
            self.prompt, self.box_world = "q", None if box is None else (tuple(box),)

        def prompt_in(self, frame: object, box: object = None) -> str:
            return self.prompt

    target = next(iter(gt[ids[0]].values()))
    clips = SceneClips(scenes, ids[:1], frames=4, image_size=28, mode="crop",
                       language={ids[0]: [Sample(target), Sample(None)]}, max_language_samples=2)
    clips.proposals = props
    item = clips[0]
    got = dict(zip([s is None for s in item["boxes"]], item["proposals"]))
    assert got[True] is None                                   # the QA-like sample gets none
    boxes = next(b for b in item["boxes"] if b is not None).double().numpy()
    iou = box3d_iou_matrix(got[False].double().numpy(), boxes)[:, 0]
    assert iou.max() > 0.3   # the target's jittered copy, in the same (box) frame as the target


def test_synthetic_proposals_refused_outside_synthrooms(tmp_path: Path, synth: Path) -> None:
    real = tmp_path / "scene0000_00"
    real.mkdir()
    with pytest.raises(ConfigError, match="only for synthrooms scenes: 1 scene"):
        build_train_proposals("synthetic", [real], {})
    with pytest.raises(ConfigError, match="no proposal file in"):
        build_train_proposals(str(tmp_path), [real], {})
    (tmp_path / "scene0000_00.json").write_text(json.dumps({"scene_id": "scene0000_00", "boxes": []}))
    with pytest.raises(DataError, match="no valid proposal box"):
        build_train_proposals(str(tmp_path), [real], {})
    scenes = synth / "posed_images"
    with pytest.raises(ConfigError, match="need GT boxes"):
        build_train_proposals("synthetic", [scenes / sorted(p.name for p in scenes.iterdir())[0]], None)


def test_stage2_run_trains_the_scorer(synth: Path, tmp_path: Path) -> None:
    init = tmp_path / "init"
    assert runner.invoke(app, ["init", "--preset", "tiny", "-o", str(init)]).exit_code == 0
    ann = synth / "annotations"
    recipe = {
        "stage": "train", "init": str(init), "model": {"preset": "tiny"},
        "data": {"scenes": str(synth / "posed_images"), "frames": 4, "image_size": 42, "proposals": "synthetic",
                 "annotations": {"scanrefer": str(ann / "ScanRefer_filtered_train.json"),
                                 "gt_boxes": str(ann / "gt_boxes.json")}},
        "optim": {"lr": 1e-3, "warmup_ratio": 0.25},
        "train": {"steps": 2, "batch_size": 1, "save_every": 100, "seed": 0},
        "stage2": {"tokenizer": str(init / "tokenizer")},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--config", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*(rec.keys() for rec in logged))
    assert any("ground_proposal_ce" in k for k in keys), keys
    recorded = "\n".join(p.read_text() for p in out.glob("*.json"))
    assert "synthetic proposals" in recorded
