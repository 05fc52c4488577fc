"""Dense captioning as Scan2Cap scores it (issue 12 item 4): the box in the caption prompt round-trips into the
benchmark frame (oracle, pitched and rolled cameras), `vidllm eval scan2cap --model` captions in the box frame and
labels GT-box runs as oracle, m@kIoU gates captions by the box they were made for, Stage-2 Scan2Cap prompts name
the matched proposal, and `vidllm caption` on a box, a point, every proposal of a file, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.helpers.cli import invoke, one_error_line
from vidllm_core.evaluation import language_hooks as H
from vidllm_core.geometry.box_frame import box_frame_from_scene
from vidllm_core.metrics.grounding import box3d_iou

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
NUM = r"-?\d+\.\d+"


def prompt_box(text: str) -> np.ndarray:
    """The [cx, cy, cz, dx, dy, dz] a Scan2Cap prompt names (`located at [..] with size [..]`)."""
    nums = [float(x) for x in re.findall(NUM, text.split("located at", 1)[1])]
    assert len(nums) == 6, text
    return np.asarray(nums)


def scannet_placement(pitch: float, roll: float, yaw: float, seed: int) -> np.ndarray:
    """A ScanNet-like `to_scene` (axis alignment @ first camera-to-world): the camera looks level-ish, pitched
    down by `pitch` and rolled by `roll` degrees, turned by `yaw` about the scene's z, 1.5 m above the floor."""
    cam_to_level = Rotation.from_euler("xz", [-90 - pitch, roll], degrees=True)   # camera y down, z forward
    m = np.eye(4)
    m[:3, :3] = (Rotation.from_euler("z", yaw, degrees=True) * cam_to_level).as_matrix()
    m[:3, 3] = np.random.default_rng(seed).uniform([-2, -2, 1.4], [2, 2, 1.6])
    return m


@pytest.mark.parametrize("pitch,roll,yaw", [(0, 0, 0), (9, 0, 30), (17, 4, 45), (25, -6, 200)])
def test_caption_prompt_box_round_trips_into_the_benchmark_frame(pitch: float, roll: float, yaw: float) -> None:
    """Oracle of the eval caption path: GT box (scene frame) -> box frame -> prompt text -> parsed -> scene frame,
    scored by the real IoU; the `vidllm caption --box` prompt (box frame) round-trips the same way."""
    rng = np.random.default_rng(int(pitch * 7 + yaw))
    gt = np.c_[rng.uniform([-3, -3, 0.2], [3, 3, 1.5], (40, 3)), rng.uniform(0.15, 2.0, (40, 3))]
    state = H.EncodedScene("scene0000_00", None, ["0"], scannet_placement(pitch, roll, yaw, 1), "0")
    back = []
    for box in gt:
        in_frame = H.to_box_frame(box, state)[0]
        back.append(H.to_scene_frame(prompt_box(H._scan2cap_prompt(in_frame).prompt)[None], state)[0])
    iou = np.asarray([float(box3d_iou(b, g)) for b, g in zip(back, gt)])
    print(f"pitch {pitch} roll {roll} yaw {yaw}: caption-prompt box IoU mean {iou.mean():.4f} min {iou.min():.4f}, "
          f"Acc@0.5 {(iou >= 0.5).mean():.2f}")
    assert iou.mean() >= 0.97 and iou.min() >= 0.9 and (iou >= 0.5).all()

    from vidllm_core.language.prompts import scan2cap_prompt

    frame = state.box_frame()
    for box in frame.boxes_from_scene(gt[:5]):
        assert float(box3d_iou(prompt_box(scan2cap_prompt(box=list(box)).prompt), box)) >= 0.9


# --- eval --model on a synthrooms scene -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One synthrooms scene (4 frames of 64x48), its GT boxes (`--gt-boxes`), GT-centred proposals + distractors,
    and a tiny random model with a language branch."""
    root = tmp_path_factory.mktemp("s2c")
    res = invoke("synth", root / "synth", "--scenes", "1", "--seed", "3", "--frames", "4", "--size", "64x48",
                 "--no-video", "--split-ratios", "1,0,0")
    assert res.exit_code == 0, res.output
    posed = root / "synth" / "posed_images"
    sid = next(p.name for p in posed.iterdir() if p.is_dir())
    meta = json.loads((posed / sid / "scene.json").read_text())
    gt = {str(o["id"]): o["aabb"]["center"] + o["aabb"]["size"] for o in meta["objects"]}
    (root / "gt.json").write_text(json.dumps({sid: gt}))
    (root / "props").mkdir()
    boxes = np.asarray(list(gt.values()))
    distractors = np.c_[np.random.default_rng(0).uniform(0, 4, (4, 3)), np.full((4, 3), 0.3)]
    np.save(root / "props" / f"{sid}.npy", np.concatenate([boxes + np.r_[0.05, 0, 0, 0, 0, 0], distractors]))
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.build import build_model

    model, _ = build_model(VidLLMConfig.from_name("tiny"), seed=0)
    model.save_pretrained(root / "tiny")
    ann = root / "synth" / "annotations" / "ScanRefer_filtered_train.json"
    return SimpleNamespace(root=root, scenes=posed, ann=ann, gt=root / "gt.json", gt_boxes={sid: gt},
                           props=root / "props", model=root / "tiny")


def eval_scan2cap(s: SimpleNamespace, out: Path, *extra: object):  # noqa: ANN201
    return invoke("eval", "scan2cap", "-a", s.ann, "--scenes", s.scenes, "--gt-boxes", s.gt, "--model", s.model,
                  "-o", out, "--limit", 3, *extra)


def test_eval_oracle_run_prompts_the_gt_box_in_the_box_frame_and_is_labelled(
        scenes: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--baseline oracle-box: every prompt names the record's GT box in the scene's box frame (parsed back into the
    scene frame: IoU >= 0.95), and metrics.json + the printed table say oracle."""
    from vidllm_core.evaluation import language_hooks as H
    from vidllm_core.pipelines import language as L

    seen: list[tuple[str, object]] = []
    frames: list[object] = []
    real_to_box_frame = H.to_box_frame

    def to_box_frame(boxes, state):  # noqa: ANN001, ANN202 - records the frame the prompt's box is written in
        frames.append(state.box_frame())
        return real_to_box_frame(boxes, state)

    def fake_answer(model, enc, prompts, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append((prompts[0].prompt, frames[-1]))
        return ["a brown wooden chair"]

    monkeypatch.setattr(H, "to_box_frame", to_box_frame)
    monkeypatch.setattr(L, "answer_prompts", fake_answer)
    out = tmp_path / "o"
    res = eval_scan2cap(scenes, out, "--baseline", "oracle-box")
    assert res.exit_code == 0, res.output
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == len(seen) == 3
    ious, thin = [], []
    for p, (prompt, frame) in zip(preds, seen):
        scene, oid, _ = p["key"].split("|")
        gt = np.asarray(scenes.gt_boxes[scene][oid])
        back = frame.boxes_to_scene(prompt_box(prompt)[None])[0]
        ious.append(float(box3d_iou(back, gt)))
        thin.append(bool(gt[3:].min() < 0.1))
    print(f"eval oracle caption prompts: IoU with the GT box {np.round(ious, 4).tolist()} (thinner than 10 cm: "
          f"{thin}; the prompt's 1 cm resolution bounds a 4 cm slab near 0.8)")
    assert all(iou >= (0.7 if t else 0.95) for iou, t in zip(ious, thin))
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["oracle"] is True and "m@0.5" not in doc["metrics"]
    assert any(n.startswith("mode: oracle") for n in doc["notes"])
    assert any("oracle" in line and "True" in line for line in res.output.splitlines()), res.output  # table row


def test_eval_default_captions_proposals_and_reports_m_at_k(
        scenes: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidllm_core.metrics.grounding import box3d_iou_matrix
    from vidllm_core.pipelines import language as L

    one_error_line(eval_scan2cap(scenes, tmp_path / "refused"), "give --proposals DIR, or --baseline oracle-box")
    assert not (tmp_path / "refused" / "metrics.json").exists()
    seen: list[str] = []
    monkeypatch.setattr(L, "answer_prompts", lambda model, enc, prompts, **kw: seen.append(prompts[0].prompt)
                        or ["a chair"])
    out = tmp_path / "o"
    res = eval_scan2cap(scenes, out, "--proposals", scenes.props, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["oracle"] is False and {"m@0.25", "m@0.5"} <= set(doc["metrics"])
    assert any(n.startswith("mode: proposals") for n in doc["notes"])
    for p, prompt in zip((json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()), seen):
        scene, oid, _ = p["key"].split("|")
        props = np.load(scenes.props / f"{scene}.npy")
        best = props[np.argmax(box3d_iou_matrix(np.asarray(scenes.gt_boxes[scene][oid])[None], props)[0])]
        np.testing.assert_allclose(p["box"], best)   # the caption belongs to the best proposal


def test_m_at_k_gates_each_caption_by_its_box(scenes: SimpleNamespace, tmp_path: Path) -> None:
    """Predictions carrying the reference caption: on the GT box m@0.5 equals the ungated score; on a box moved
    off the object (IoU 0) the caption counts as empty at m@0.25 and m@0.5."""
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.tasks import get_task

    items, _ = ev.load_items(get_task("scan2cap"), [scenes.ann])
    items = items[:4]
    scores = {}
    for name, shift in (("on", 0.0), ("off", 10.0)):
        pred = tmp_path / f"{name}.jsonl"
        pred.write_text("".join(json.dumps({"key": o.key, "caption": o.references[0].replace("sos ", "")
                                            .replace(" eos", ""),
                                            "box": list(np.asarray(scenes.gt_boxes[o.scene_id][str(o.object_id)])
                                                        + np.r_[shift, 0, 0, 0, 0, 0])}) + "\n" for o in items))
        res = invoke("eval", "scan2cap", "-a", scenes.ann, "--predictions", pred, "--gt-boxes", scenes.gt,
                     "-o", tmp_path / name, "--limit", 4, "--json")
        assert res.exit_code == 0, res.output
        scores[name] = json.loads((tmp_path / name / "metrics.json").read_text())["metrics"]
    on, off = scores["on"], scores["off"]
    print(f"CIDEr ungated {on['CIDEr']:.3f}; m@0.5 on the GT box {on['m@0.5']['CIDEr']:.3f}, off the object "
          f"{off['m@0.5']['CIDEr']:.3f}")
    assert on["ROUGE_L"] > 0.9 and on["m@0.5"] == pytest.approx({k: v for k, v in on.items() if k in on["m@0.5"]})
    # an empty caption is scored as Scan2Cap does ("sos eos" against "sos ... eos": BLEU-4 and CIDEr 0)
    assert off["ROUGE_L"] == pytest.approx(1.0) and off["oracle"] is False
    for k in ("m@0.25", "m@0.5"):
        assert off[k]["Bleu_4"] == pytest.approx(0.0, abs=1e-6) and off[k]["CIDEr"] == pytest.approx(0.0, abs=1e-6)


# --- Stage-2 Scan2Cap samples with proposals ------------------------------------------------------------------------

def test_training_prompt_names_the_matched_proposal() -> None:
    from vidllm_core.data.benchmarks import Scan2CapObject
    from vidllm_core.training.language_samples import scan2cap_samples
    from vidllm_core.training.proposals import TrainProposals

    gt = np.array([1.0, 2.0, 0.5, 0.8, 0.6, 1.0])
    near = gt + np.r_[0.08, -0.05, 0.0, 0.0, 0.0, 0.0]             # IoU ~0.8 with the GT box
    props = TrainProposals(files={"scene0001_00": np.stack([near, gt + np.r_[2.0, 0, 0, 0, 0, 0]])})
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(props.caption_box("scene0001_00", gt, rng), near)
    far = TrainProposals(files={"scene0001_00": (gt + np.r_[0.5, 0, 0, 0, 0, 0])[None]})   # IoU < 0.5: GT box
    np.testing.assert_allclose(far.caption_box("scene0001_00", gt, rng), gt)
    record = Scan2CapObject("scene0001_00|3|chair", "scene0001_00", 3, "chair", ("sos a red chair eos",))
    (sample,) = scan2cap_samples(record, lambda s, o: gt, 64)
    frame = box_frame_from_scene(scannet_placement(12, 3, 70, 2))
    named = frame.boxes_to_scene(prompt_box(sample.prompt_in(frame, near).prompt)[None])[0]
    assert float(box3d_iou(named, near)) >= 0.95 and float(box3d_iou(named, gt)) < 0.9


def test_stage2_scan2cap_item_prompts_the_matched_proposal(scenes: SimpleNamespace, tmp_path: Path) -> None:
    """Through `SceneClips` with `data.proposals` = a folder: the item's Scan2Cap prompt names the proposal matched
    to the object (sizes x1.15, IoU ~0.66), not the GT box; without proposals it names the GT box."""
    from vidllm_core.data.benchmarks import Scan2CapObject
    from vidllm_core.training.data import SceneClips
    from vidllm_core.training.language_samples import scan2cap_samples
    from vidllm_core.training.proposals import build_train_proposals

    (sid, boxes), = scenes.gt_boxes.items()
    oid, gt = max(boxes.items(), key=lambda kv: min(kv[1][3:]))     # the stoutest object: sizes tell boxes apart
    gt = np.asarray(gt)
    grown = np.asarray([np.r_[b[:3], np.asarray(b[3:]) * 1.15] for b in boxes.values()])
    (tmp_path / "p").mkdir()
    np.save(tmp_path / "p" / f"{sid}.npy", grown)
    record = Scan2CapObject(f"{sid}|{oid}|thing", sid, int(oid), "thing", ("sos a thing eos",))
    language = {sid: scan2cap_samples(record, lambda s, o: gt, 64)}
    sizes = {}
    for mode in ("gt", "proposals"):
        clips = SceneClips(scenes.scenes, [sid], frames=4, image_size=28, mode="crop", language=language,
                           max_language_samples=1)
        if mode == "proposals":
            clips.proposals, _ = build_train_proposals(str(tmp_path / "p"), [scenes.scenes / sid], None)
        sizes[mode] = np.sort(prompt_box(clips[0]["prompts"][0].prompt)[3:])
    np.testing.assert_allclose(sizes["gt"], np.sort(gt[3:]), atol=0.006)
    np.testing.assert_allclose(sizes["proposals"], np.sort(gt[3:] * 1.15), atol=0.006)


def test_gravity_aligned_box_files_are_mapped_into_the_box_frame(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A `ground --gravity-align -o` file names its frame; its boxes are captioned at their box-frame place (exact
    quarter-turn map), numbered by file row; a box-frame file is passed through."""
    from vidllm_core.pipelines import language as L
    from vidllm_core.pipelines.caption_scene import caption_scene, read_box_file

    asked: list[list[float]] = []
    monkeypatch.setattr(L, "caption", lambda model, enc, box, frame, **kw: asked.append(box)
                        or L.Answer("q", f"thing {len(asked)}"))
    frame = box_frame_from_scene(scannet_placement(12, 3, 130, 4))
    rows = [[1.0, 2.0, 0.5, 0.8, 0.3, 1.2], [0, 0, 0, -1, 1, 1], [-1.0, 0.5, 1.0, 0.4, 0.6, 0.2]]
    for name, gravity in (("gravity_aligned: z up, floor at z = 0", True), ("box frame: z up", False)):
        path = tmp_path / "b.json"
        path.write_text(json.dumps({"frame": {"name": name}, "boxes": [{"box": b, "score": 1} for b in rows]}))
        got = read_box_file(path)
        assert got.gravity_aligned is gravity and got.dropped == 1 and got.index.tolist() == [0, 2]
        asked.clear()
        done = caption_scene(None, None, got.boxes, index=got.index, gravity_aligned=got.gravity_aligned,
                             frame=frame)
        want = frame.boxes_from_scene(got.boxes) if gravity else got.boxes
        np.testing.assert_allclose(np.asarray(asked), want)
        assert [r["index"] for r in done.rows] == [0, 2] and done.rows[1]["caption"] == "thing 2"


# --- vidllm caption on a video ---------------------------------------------------------------------------------------

def test_caption_box_point_and_every_proposal(tiny_model_dir, tiny_video, tmp_path) -> None:  # noqa: ANN001
    common = ("--model", tiny_model_dir, "--cache-dir", tmp_path / "c", "--max-new-tokens", 2)
    help_text = invoke("caption", "--help").output
    assert "box frame" in help_text and "--proposals" in help_text
    far = invoke("caption", tiny_video, "--point", "0,0,500", *common)     # one line naming the scene's bounds
    one_error_line(far, "outside the reconstruction")
    lo, hi = (np.asarray([float(v) for v in re.findall(NUM, part)]) for part in far.output.split("bounds")[1]
              .split(" to "))
    c = [round(float(v), 2) for v in (lo + hi) / 2]
    box = invoke("caption", tiny_video, "--box", f"{c[0]},{c[1]},{c[2]},0.4,0.4,0.4", "--json", *common)
    assert box.exit_code == 0, box.output
    doc = json.loads(box.stdout)
    assert doc["frame"]["name"].startswith("box frame") and "with size [0.40, 0.40, 0.40]" in doc["prompt"]
    point = invoke("caption", tiny_video, "--point", f"{c[0]},{c[1]},{c[2]}", "--json", *common)
    assert point.exit_code == 0 and "with size" not in json.loads(point.stdout)["prompt"], point.output
    props = tmp_path / "props.json"
    rows = [[*c, 0.4, 0.4, 0.4], [*c, 0.0, 0.4, 0.4], [float("nan"), 0, 1, 1, 1, 1], [*c, 0.3, 0.3, 0.3],
            [0, 0, 500, 1, 1, 1]]
    props.write_text(json.dumps({"boxes": rows}))
    every = invoke("caption", tiny_video, "--proposals", props, "--json", *common)
    assert every.exit_code == 0, every.output
    lines = [json.loads(x) for x in every.stdout.splitlines()]
    assert [r["index"] for r in lines] == [0, 3] and all("caption" in r and r["frame"] for r in lines)
    assert "dropped 2 box(es)" in every.stderr and "1 box(es) not captioned (e.g. box 4:" in every.stderr
    text = invoke("caption", tiny_video, "--proposals", props, *common)
    assert text.exit_code == 0 and text.stdout.startswith(f"box 0 {[*c, 0.4, 0.4, 0.4]}:"), text.output
    assert f"box 3 {[*c, 0.3, 0.3, 0.3]}:" in text.stdout   # numbered as in the file


def test_caption_bad_input_is_one_line(tiny_model_dir, tiny_video, tmp_path) -> None:  # noqa: ANN001
    common = ("--model", tiny_model_dir, "--cache-dir", tmp_path / "c", "--max-new-tokens", 2)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    one_error_line(invoke("caption", tiny_video, "--proposals", empty, *common), "holds no box")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"boxes": [[1, 1, 1, 0, 1, 1], [float("nan")] * 6, [0, 0, 0, -1, 1, 1]]}))
    one_error_line(invoke("caption", tiny_video, "--proposals", bad, *common), "holds no valid box: all 3")
    one_error_line(invoke("caption", tiny_video, "--box", "0,0,1,0,0.4,0.4", *common), "must be positive")
    one_error_line(invoke("caption", tiny_video, "--box", "0,nan,1,0.4,0.4,0.4", *common), "finite")
    one_error_line(invoke("caption", tiny_video, "--point", "nan,0,0", *common), "finite")
    one_error_line(invoke("caption", tiny_video, "--proposals", tmp_path / "none.json", *common), "not found")
