"""Stage-2 language samples of every training set (issue 11 item 3): the real sample files load as released, the
Scan2Cap box-in-prompt encoding round-trips (oracle), skipped records are counted, per-task weights, and the
recipe / chain refusals (annotations without an LLM, an --init without LLM weights)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vidllm_core.errors import CheckpointError, ConfigError, DataError
from vidllm_core.geometry.box_frame import box_frame_from_scene
from vidllm_core.metrics.grounding import box3d_iou
from vidllm_core.training.language_samples import (LanguageSample, choose_samples, load_language_samples,
                                                   scan2cap_samples)
from vidllm_core.training.recipe import Recipe

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"


def _turned(deg: float, shift: tuple[float, float, float]) -> np.ndarray:
    a = np.deg2rad(deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = shift
    return m


@pytest.mark.parametrize("deg", [0.0, 100.0, 260.0])
def test_scan2cap_box_in_the_prompt_round_trips(deg: float) -> None:
    """Oracle: GT box -> prompt text in the clip's box frame -> parsed back to the scene frame -> IoU ~ 1."""
    from vidllm_core.data.benchmarks import Scan2CapObject

    gt = np.array([1.234, -0.567, 0.891, 0.6, 0.45, 0.9])
    record = Scan2CapObject("scene0046_00|3|bed", "scene0046_00", 3, "bed", ("sos a bed with a white pillow eos",))
    (sample,) = scan2cap_samples(record, lambda s, o: gt if (s, o) == ("scene0046_00", 3) else None, 64)
    frame = box_frame_from_scene(_turned(deg, (0.4, -1.1, 1.3)))
    prompt = sample.prompt_in(frame)
    assert prompt.task == "scan2cap" and prompt.target == "a bed with a white pillow"
    nums = [float(x) for x in re.findall(r"-?\d+\.\d+", prompt.prompt)]
    assert len(nums) == 6
    back = frame.boxes_to_scene(np.array(nums)[None])[0]
    assert float(box3d_iou(back, gt)) > 0.95


def test_every_training_set_loads_as_released_and_skips_are_counted() -> None:
    boxes = {"scene0046_00": {0: np.ones(6), 21: np.ones(6), 26: np.ones(6), 3: np.ones(6)}}
    annotations = {"scanqa": str(FIX / "scanqa_val_sample.json"),
                   "sqa3d": str(FIX / "sqa3d_v1_balanced_questions_test_scannetv2_sample.json"),
                   "sr3d": str(FIX / "sr3d_test_sample.csv")}
    with pytest.warns(UserWarning, match="not in data.scenes"):
        samples, notes = load_language_samples(annotations, ["scene0046_00"], gt_boxes=boxes)
    tasks = sorted({s.task for s in samples["scene0046_00"]})
    assert tasks == ["scanqa", "sqa3d", "sr3d"]
    sqa = next(s for s in samples["scene0046_00"] if s.task == "sqa3d")
    assert sqa.prompt.target  # the answer comes from the annotations file found beside the questions file
    assert any(n.startswith("scanqa: 19 record(s) of 19 scene(s) not in data.scenes") for n in notes), notes
    sr3d = next(s for s in samples["scene0046_00"] if s.task == "sr3d")
    assert sr3d.box_world == (tuple(np.ones(6)),)


def test_missing_object_box_is_a_counted_skip_and_no_sample_is_an_error() -> None:
    annotations = {"sr3d": str(FIX / "sr3d_test_sample.csv")}
    with pytest.raises(DataError, match=r"gives no training sample .* \(object 21 of scene0046_00 is not in"):
        load_language_samples(annotations, ["scene0046_00"], gt_boxes={"scene0046_00": {}})
    with pytest.raises(DataError, match="needs GT boxes"):
        load_language_samples(annotations, ["scene0046_00"], gt_boxes=None)
    with pytest.warns(UserWarning, match=r"sr3d: 1 record\(s\) skipped, e.g. object 8 of scene0050_00 is not in"):
        load_language_samples(annotations, ["scene0046_00", "scene0050_00"],
                              gt_boxes={"scene0046_00": {21: np.ones(6)}, "scene0050_00": {}})


def test_task_weights_draw_proportionally_and_zero_leaves_a_task_out() -> None:
    samples = [LanguageSample("scanqa", None)] * 10 + [LanguageSample("scanrefer", None)] * 10
    rng = np.random.default_rng(0)
    picks = [s.task for _ in range(400) for s in choose_samples(samples, 1, {"scanrefer": 3.0}, rng)]
    assert 0.7 < picks.count("scanrefer") / len(picks) < 0.8
    assert {s.task for s in choose_samples(samples, 20, {"scanqa": 0.0}, rng)} == {"scanrefer"}


@pytest.mark.parametrize("data, message", [
    ({"annotations": {"scannqa": "a.json"}}, "unknown key(s) scannqa"),
    ({"annotations": {"scanqa": "a.json"}, "task_weights": {"sqa3d": 1.0}}, "data.task_weights.sqa3d: not a task"),
    ({"annotations": {"scanqa": "a.json"}, "task_weights": {"scanqa": -1}}, "must be a non-negative number"),
])
def test_recipe_task_keys_checked(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Recipe.from_dict({"stage": "train", "data": data})


def test_language_annotations_without_an_llm_are_refused(scenes_dir: Path, tmp_path: Path) -> None:
    from vidllm_core.training import stage2
    from vidllm_core.training.common import DistInfo

    ann = tmp_path / "scanqa.json"
    ann.write_text(json.dumps([]), encoding="utf-8")
    recipe = Recipe.from_dict({"stage": "train", "model": {"preset": "tiny", "overrides": {"language": {"llm": {}}}},
                               "data": {"scenes": str(scenes_dir), "frames": 2, "annotations": {"scanqa": str(ann)}},
                               "train": {"steps": 1}})
    with pytest.raises(ConfigError, match=r"data.annotations holds language tasks \(scanqa\) but the model has no LLM"):
        stage2.setup(recipe, tmp_path / "run", DistInfo())


def test_init_without_llm_weights_refused_for_a_pretrained_llm_and_noted_for_tiny(scenes_dir: Path,
                                                                                 tmp_path: Path) -> None:
    """A preset whose LLM must come from --init (paper: `llm` empty) refuses an init without LLM weights; tiny
    (its own from-scratch LLM) warns and records it in run_notes.json."""
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.build import build_model, build_tokenizer_for
    from vidllm_core.training import stage2
    from vidllm_core.training.common import DistInfo

    import shutil

    scenes = tmp_path / "scenes"  # one scene with its ScanNet meta file (axis alignment), as language samples need
    shutil.copytree(scenes_dir / "scene0000_00", scenes / "scene0000_00")
    (scenes / "scene0000_00" / "scene0000_00.txt").write_text(
        "axisAlignment = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n", encoding="utf-8")
    vision_only, _ = build_model(VidLLMConfig.from_name("tiny"), language=False)
    vision_only.save_pretrained(tmp_path / "M")
    build_tokenizer_for(vision_only.config, out_dir=tmp_path / "tok")
    ann = tmp_path / "scanqa.json"
    ann.write_text(json.dumps([{"scene_id": "scene0000_00", "question_id": "q0", "question": "What is it?",
                                "answers": ["a wall"], "object_ids": [], "object_names": []}]), encoding="utf-8")
    d = {"stage": "train", "init": str(tmp_path / "M"), "model": {"preset": "tiny"},
         "data": {"scenes": str(scenes), "frames": 2, "annotations": {"scanqa": str(ann)}},
         "train": {"steps": 1}, "stage2": {"tokenizer": str(tmp_path / "tok")}}
    with pytest.warns(UserWarning, match="holds no LLM weights"):
        stage2.setup(Recipe.from_dict(d), tmp_path / "run", DistInfo())
    notes = json.loads((tmp_path / "run" / "run_notes.json").read_text())
    assert "starts from random weights" in notes["init"][0]
    d["model"]["overrides"] = {"language": {"llm": {}}}  # the LLM must come from --init, as for the paper preset
    with pytest.raises(CheckpointError, match="holds no LLM weights"):
        stage2.setup(Recipe.from_dict(d), tmp_path / "run2", DistInfo())
