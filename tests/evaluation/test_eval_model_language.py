"""`vidllm eval <language task> --model`: a tiny random model with a language branch on two `vidllm synth` scenes.
The answers are random; what is tested is the plumbing: every task end to end with finite metrics, one vision pass
per scene (even when the file interleaves scenes), proposals, resuming, `--limit`, the frame map into the scene's
frame, the Nr3D/Sr3D object choice, and bad input as one-line errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.evaluation import language_hooks
from vidllm_core.evaluation.context import EvalContext
from vidllm_core.models.vidllm import VidLLM

runner = CliRunner()
SCENES = ["synth0000_00", "synth0001_00"]
ANN = {"scanqa": "ScanQA_v1.0_train.json", "sqa3d": "v1_balanced_questions_train_scannetv2.json",
       "scan2cap": "ScanRefer_filtered_train.json", "scanrefer": "ScanRefer_filtered_train.json",
       "multi3drefer": "multi3drefer_train.json", "nr3d": "nr3d_train.csv", "sr3d": "sr3d_train.csv"}
MAIN = {"scanqa": "EM@1", "sqa3d": "EM@1", "scan2cap": "CIDEr", "scanrefer": "Acc@0.25", "multi3drefer": "F1@0.25",
        "nr3d": "overall", "sr3d": "overall"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two synthrooms scenes (4 frames of 64x48, all annotations in the train split), their GT boxes as a
    `--gt-boxes` file, proposals (GT boxes shifted + random boxes), and a tiny model with a random Qwen2."""
    root = tmp_path_factory.mktemp("lang")
    res = runner.invoke(app, ["synth", str(root / "synth"), "--scenes", "2", "--seed", "0", "--frames", "4",
                              "--size", "64x48", "--no-video", "--split-ratios", "1,0,0"])
    assert res.exit_code == 0, res.output
    posed = root / "synth" / "posed_images"
    gt: dict[str, dict[str, list[float]]] = {}
    rng = np.random.default_rng(0)
    (root / "props").mkdir()
    for sid in SCENES:
        meta = json.loads((posed / sid / "scene.json").read_text())
        gt[sid] = {str(o["id"]): o["aabb"]["center"] + o["aabb"]["size"] for o in meta["objects"]}
        boxes = np.asarray(list(gt[sid].values()))
        props = np.concatenate([boxes + np.r_[0.1, -0.05, 0.0, 0, 0, 0], np.c_[rng.uniform(0, 4, (5, 3)),
                                                                                rng.uniform(0.2, 1, (5, 3))]])
        np.save(root / "props" / f"{sid}.npy", props)
    (root / "gt.json").write_text(json.dumps(gt))
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.build import build_model

    model, _ = build_model(VidLLMConfig.from_name("tiny"), seed=0)
    assert model.has_language
    model.save_pretrained(root / "tiny")
    return SimpleNamespace(root=root, scenes=posed, ann=root / "synth" / "annotations", gt=root / "gt.json",
                           props=root / "props", model=root / "tiny")


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts vision passes (`VidLLM.encode_scene` calls); each entry is the number of frames encoded."""
    calls: list[int] = []
    original = VidLLM.encode_scene

    def counting(self: VidLLM, images: torch.Tensor):  # noqa: ANN202
        calls.append(int(images.shape[0]))
        return original(self, images)

    monkeypatch.setattr(VidLLM, "encode_scene", counting)
    return calls


def run_eval(data: SimpleNamespace, task: str, out: Path, *extra: str, ann: Path | None = None):  # noqa: ANN201
    args = ["eval", task, "-a", str(ann or data.ann / ANN[task]), "--scenes", str(data.scenes), "--gt-boxes",
            str(data.gt), "--model", str(data.model), "-o", str(out), "--json", *extra]
    return runner.invoke(app, args)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def finite_numbers(tree: object) -> list[float]:
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in finite_numbers(v)]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [float(tree)]
    return []


def selected(data: SimpleNamespace, task: str, limit: int) -> list:
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.tasks import get_task

    items, _ = ev.load_items(get_task(task), [data.ann / ANN[task]])
    return items[:limit]


# --- every task end to end ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", list(ANN))
def test_task_end_to_end(data: SimpleNamespace, task: str, tmp_path: Path, encode_calls: list[int]) -> None:
    limit = 5
    oracle = ("--baseline", "oracle-box") if task == "scan2cap" else ()   # GT boxes: labelled oracle
    res = run_eval(data, task, tmp_path / "o", "--limit", str(limit), *oracle)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert doc["n"] == limit and doc["run"]["source"] == "model"
    main = doc["metrics"][MAIN[task]]
    assert isinstance(main, float) and math.isfinite(main)
    assert all(math.isfinite(x) for x in finite_numbers(doc["metrics"]))
    items = selected(data, task, limit)
    preds = records(tmp_path / "o" / "predictions.jsonl")
    key = {"scanqa": "question_id", "sqa3d": "question_id", "scan2cap": "key"}.get(task, "id")
    assert sorted(str(p[key]) for p in preds) == sorted(it.uid for it in items)   # --limit: exactly these
    assert len(encode_calls) == len({it.scene_id for it in items})                 # one vision pass per scene
    assert all(n == 4 for n in encode_calls)                                        # config.input.num_frames
    for p, it in zip(sorted(preds, key=lambda p: str(p[key])), sorted(items, key=lambda it: it.uid)):
        if task in ("scanqa", "sqa3d"):
            assert isinstance(p["answer"], str)
        elif task == "scan2cap":
            assert isinstance(p["caption"], str) and "box" not in p   # the GT box is given: no m@kIoU
            assert any(n.startswith("mode: oracle") for n in doc["notes"])
        elif task in ("scanrefer", "multi3drefer"):
            boxes = np.asarray(p["boxes"], dtype=float).reshape(-1, 6)
            assert np.isfinite(boxes).all() and (boxes[:, 3:] > 0).all()
            if task == "scanrefer":
                assert len(boxes) == 1
        else:
            assert p["object_id"] in (it.target_id, *it.distractor_ids)
            assert 0.0 <= p["iou"] <= 1.0


def test_interleaved_scenes_are_encoded_once(data: SimpleNamespace, tmp_path: Path, encode_calls: list[int]) -> None:
    """A file alternating between the two scenes still runs one vision pass per scene."""
    recs = json.loads((data.ann / ANN["scanrefer"]).read_text())
    by_scene = [[r for r in recs if r["scene_id"] == s][:3] for s in SCENES]
    mixed = [r for pair in zip(*by_scene) for r in pair]
    assert [r["scene_id"] for r in mixed[:2]] == SCENES
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(mixed))
    res = run_eval(data, "scanrefer", tmp_path / "o", ann=path)
    assert res.exit_code == 0, res.output
    assert len(encode_calls) == 2
    assert len(records(tmp_path / "o" / "predictions.jsonl")) == 6


# --- proposals -----------------------------------------------------------------------------------------------------

def test_grounding_selects_among_proposals(data: SimpleNamespace, tmp_path: Path) -> None:
    for task in ("scanrefer", "multi3drefer"):
        res = run_eval(data, task, tmp_path / task, "--limit", "4", "--proposals", str(data.props))
        assert res.exit_code == 0, res.output
        for p in records(tmp_path / task / "predictions.jsonl"):
            props = np.load(data.props / f"{p['id'].split('|')[0]}.npy")
            for box in p["boxes"]:   # returned exactly as given (scene frame), not mapped there and back
                assert np.abs(props - np.asarray(box)).max(1).min() < 1e-12


def test_bad_proposal_files_are_counted_and_labelled(data: SimpleNamespace, tmp_path: Path) -> None:
    """An empty list, NaN rows and non-positive sizes: the run completes, every problem is counted in a note of
    metrics.json and the mode is labelled (issue 12); no silent zero score."""
    props = tmp_path / "props"
    props.mkdir()
    good = np.load(data.props / f"{SCENES[0]}.npy")
    bad = np.concatenate([good, [[np.nan, 0, 0, 1, 1, 1], [1, 1, 1, 0, 1, 1], [1, 1, 1, -1, 1, 1]]])
    np.save(props / f"{SCENES[0]}.npy", bad)
    (props / f"{SCENES[1]}.json").write_text(json.dumps({"scene_id": SCENES[1], "boxes": []}))
    res = run_eval(data, "scanrefer", tmp_path / "o", "--proposals", str(props))
    assert res.exit_code == 0, res.output
    notes = json.loads((tmp_path / "o" / "metrics.json").read_text())["notes"]
    assert any(n.startswith("mode: proposals") for n in notes), notes
    assert any("dropped 3 box(es)" in n and "1 scene(s)" in n for n in notes), notes
    assert any("no valid proposal in 1 scene(s)" in n for n in notes), notes
    for p in records(tmp_path / "o" / "predictions.jsonl"):
        boxes = np.asarray(p["boxes"]).reshape(-1, 6)
        assert np.isfinite(boxes).all() and (boxes[:, 3:] > 0).all()
        assert len(boxes) == (1 if p["id"].startswith(SCENES[0]) else 0)
    (props / f"{SCENES[1]}.json").write_text(json.dumps({"scene_id": SCENES[0], "boxes": good.tolist()}))
    res = run_eval(data, "scanrefer", tmp_path / "o2", "--proposals", str(props))
    assert res.exit_code == 2 and f"is for scene '{SCENES[0]}', not '{SCENES[1]}'" in res.output
    assert "Traceback" not in res.output


def test_scan2cap_needs_proposals_or_the_oracle_flag(data: SimpleNamespace, tmp_path: Path) -> None:
    res = run_eval(data, "scan2cap", tmp_path / "o", "--limit", "1")
    assert res.exit_code == 2 and "give --proposals DIR, or --baseline oracle-box" in res.output, res.output
    res = run_eval(data, "scan2cap", tmp_path / "o2", "--limit", "1", "--baseline", "oracle-box", "--proposals",
                   str(data.props))
    assert res.exit_code == 2 and "leave out --proposals" in res.output, res.output


def test_regression_mode_is_labelled(data: SimpleNamespace, tmp_path: Path) -> None:
    res = run_eval(data, "scanrefer", tmp_path / "o", "--limit", "1")
    assert res.exit_code == 0, res.output
    notes = json.loads((tmp_path / "o" / "metrics.json").read_text())["notes"]
    assert any(n.startswith("mode: regression") for n in notes), notes


def test_scan2cap_with_proposals_captions_the_best_proposal(data: SimpleNamespace, tmp_path: Path) -> None:
    from vidllm_core.metrics.grounding import box3d_iou_matrix

    res = run_eval(data, "scan2cap", tmp_path / "o", "--limit", "3", "--proposals", str(data.props))
    assert res.exit_code == 0, res.output
    gt = json.loads(data.gt.read_text())
    for p in records(tmp_path / "o" / "predictions.jsonl"):
        scene, oid, _ = p["key"].split("|")
        props = np.load(data.props / f"{scene}.npy")
        best = props[np.argmax(box3d_iou_matrix(np.asarray(gt[scene][oid])[None], props)[0])]
        np.testing.assert_allclose(p["box"], best)
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())["metrics"]
    assert math.isfinite(metrics["m@0.25"]["CIDEr"]) and math.isfinite(metrics["m@0.5"]["Bleu_4"])


# --- resuming and the run guard ------------------------------------------------------------------------------------

def test_resume_skips_done_ids(data: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    assert run_eval(data, "scanqa", out, "--limit", "3").exit_code == 0
    first = records(out / "predictions.jsonl")
    seen: list[str] = []
    original = language_hooks.predict_record

    def counting(task, model_dir, record, ctx):  # noqa: ANN001, ANN202
        seen.append(record.uid)
        return original(task, model_dir, record, ctx)

    monkeypatch.setattr(language_hooks, "predict_record", counting)
    res = run_eval(data, "scanqa", out, "--limit", "5")
    assert res.exit_code == 0, res.output
    after = records(out / "predictions.jsonl")
    assert after[:3] == first                                   # untouched
    assert len(seen) == 2 and {r["question_id"] for r in first}.isdisjoint(seen)
    assert len({r["question_id"] for r in after}) == 5 == len(after)
    # a resume with other settings is refused, nothing appended
    res = run_eval(data, "scanqa", out, "--limit", "6", "--frames", "2")
    assert res.exit_code == 2 and "another run" in res.output
    assert len(records(out / "predictions.jsonl")) == 5


# --- the frame map -------------------------------------------------------------------------------------------------

def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_reconstruction_is_placed_by_the_first_gt_pose(data: SimpleNamespace, tmp_path: Path) -> None:
    """The predicted first camera lands on the GT first camera, axis alignment included (non-identity here)."""
    scenes = tmp_path / "scenes"
    shutil.copytree(data.scenes / SCENES[0], scenes / SCENES[0])
    align = np.eye(4)
    align[:3, :3], align[:3, 3] = _rot_z(30.0), [1.5, -2.0, 0.25]
    (scenes / SCENES[0] / f"{SCENES[0]}.txt").write_text(
        "axisAlignment = " + " ".join(f"{v:.17g}" for v in align.ravel()) + "\n")
    model = VidLLM.from_pretrained(data.model)
    state = language_hooks.encode_posed_scene(model, scenes, SCENES[0], EvalContext())
    assert state.frames == ["00000", "00001", "00002", "00003"] and state.anchor == "00000"
    ext = state.encoding.geometry.extrinsic[0].double().numpy()
    c2w_pred = np.eye(4)
    c2w_pred[:3, :3], c2w_pred[:3, 3] = ext[:, :3].T, -ext[:, :3].T @ ext[:, 3]
    c2w_gt = align @ np.loadtxt(scenes / SCENES[0] / "00000.txt")
    np.testing.assert_allclose(state.to_scene @ c2w_pred, c2w_gt, atol=1e-5)
    # boxes: into the box frame and back, exactly, whatever the turn between camera and scene (issue 12)
    box = np.array([[1.0, 2.0, 0.5, 0.4, 1.2, 0.8]])
    for deg in (90.0, 45.0, -30.0):
        state.to_scene = np.eye(4)
        state.to_scene[:3, :3], state.to_scene[:3, 3] = _rot_z(deg), [0.5, 1.0, -1.0]
        inside = language_hooks.to_box_frame(box, state)
        assert sorted(inside[0, 3:]) == pytest.approx(sorted(box[0, 3:]), abs=1e-12)   # never inflated
        np.testing.assert_allclose(language_hooks.to_scene_frame(inside, state), box, atol=1e-12)


# --- Nr3D / Sr3D object choice -------------------------------------------------------------------------------------

def test_pick_object_rule() -> None:
    gt = np.array([[0, 0, 0, 1, 1, 1], [3, 0, 0, 1, 1, 1], [6, 0, 0, 1, 1, 1.0]])
    ids = [7, 3, 9]
    assert language_hooks.pick_object(np.array([3.2, 0, 0, 1, 1, 1]), ids, gt) == (3, pytest.approx(0.8 / 1.2))
    # no overlap with any candidate: the nearest centre, not the first listed
    assert language_hooks.pick_object(np.array([5.0, 0, 0, 0.2, 0.2, 0.2]), ids, gt)[0] == 9
    # equal IoU and distance: the smallest id
    twins = np.array([[1, 0, 0, 1, 1, 1], [-1, 0, 0, 1, 1, 1.0]])
    assert language_hooks.pick_object(np.array([0, 0, 0, 0.1, 0.1, 0.1]), [8, 4], twins)[0] == 4
    assert language_hooks.pick_object(None, [8, 4], twins) == (4, 0.0)


def test_scene_order_groups_by_first_appearance() -> None:
    items = [SimpleNamespace(scene_id=s, uid=str(i)) for i, s in enumerate("abacbca")]
    assert [it.uid for it in language_hooks.scene_order(items)] == ["0", "2", "6", "1", "4", "3", "5"]


# --- bad input -----------------------------------------------------------------------------------------------------

def test_bad_input_is_one_line(data: SimpleNamespace, tmp_path: Path) -> None:
    base = ["eval", "scanqa", "-a", str(data.ann / ANN["scanqa"]), "--model", str(data.model), "--limit", "2"]
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert res.exit_code == 2 and "--scenes" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "a" / "predictions.jsonl").exists()
    res = runner.invoke(app, ["eval", "nr3d", "-a", str(data.ann / ANN["nr3d"]), "--scenes", str(data.scenes),
                              "--model", str(data.model), "-o", str(tmp_path / "b")])
    assert res.exit_code == 2 and "--gt-boxes" in res.output
    assert not (tmp_path / "b").exists()
    # a vision-only model cannot answer
    from vidllm_core.config import VidLLMConfig

    VidLLM(VidLLMConfig.from_name("tiny")).save_pretrained(tmp_path / "vision_only")
    res = runner.invoke(app, [*base[:4], "--model", str(tmp_path / "vision_only"), "--scenes", str(data.scenes),
                              "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and "no language branch" in res.output
    assert not (tmp_path / "c" / "predictions.jsonl").exists()
    # a scene listed in the annotations but missing from --scenes
    empty = tmp_path / "empty_scenes"
    empty.mkdir()
    res = runner.invoke(app, [*base, "--scenes", str(empty), "-o", str(tmp_path / "d")])
    assert res.exit_code == 2 and "scene folder not found" in res.output
    assert res.output.count("\n") <= 2
