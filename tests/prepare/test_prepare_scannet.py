"""`vidllm prepare scannet`: a tiny ScanNet-layout dataset (raw scans + posed images) -> prepared folder whose
boxes equal the analytic boxes in the axis-aligned frame; every bad input is one line naming the file."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers.scannet_layout import SCENE_OBJECTS, build_scannet_layout
from vidllm_cli.main import app
from vidllm_core.data.benchmarks import boxes_from_scannet_scan, load_gt_boxes_file
from vidllm_core.data.prepared import load_prepared
from vidllm_core.errors import DataError

runner = CliRunner()
A, B = sorted(SCENE_OBJECTS)   # scene0046_00, scene0050_00


@pytest.fixture
def layout(tmp_path):
    return build_scannet_layout(tmp_path / "scannet", frames=3)


def prepare(layout, out, *extra):
    return runner.invoke(app, ["prepare", "scannet", "--scans", str(layout.scans), "--posed-images",
                               str(layout.posed_images), "-o", str(out), *extra])


def error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_boxes_equal_the_analytic_boxes_in_the_aligned_frame(layout, tmp_path):
    out = tmp_path / "prepared"
    result = prepare(layout, out)
    assert result.exit_code == 0, result.output
    p = load_prepared(out)
    assert p.scene_ids == [A, B]
    gt_file = load_gt_boxes_file(out / "gt_boxes.json")
    for scene_id in (A, B):
        assert np.allclose(p.axis_align(scene_id), layout.alignments[scene_id], atol=1e-8)
        assert not np.allclose(p.axis_align(scene_id), np.eye(4))
        assert p.alignment(scene_id) == "file"
        boxes = p.boxes(scene_id)
        assert sorted(boxes) == sorted(SCENE_OBJECTS[scene_id])
        for oid, expected in layout.expected_boxes[scene_id].items():
            np.testing.assert_allclose(boxes[oid], expected, atol=1e-5)   # PLY vertices are float32
            np.testing.assert_allclose(gt_file[scene_id][oid], expected, atol=1e-5)
        assert {o["object_id"]: o["label"] for o in p.objects(scene_id)} == SCENE_OBJECTS[scene_id]
        assert p.posed_images(scene_id) == (layout.posed_images / scene_id).resolve()
        assert p.index["scenes"][scene_id]["frames"] == 3


def test_the_alignment_is_applied_not_skipped(layout):
    """Without the alignment the boxes of the rotated raw mesh are different (guards the test above)."""
    os.remove(layout.scans / A / f"{A}.txt")
    raw = boxes_from_scannet_scan(layout.scans / A, A, allow_missing_alignment=True)
    worst = max(np.abs(raw[o] - layout.expected_boxes[A][o]).max() for o in raw)
    assert worst > 0.5


def test_label_map_adds_nyu40(layout, tmp_path):
    tsv = tmp_path / "scannetv2-labels.combined.tsv"
    tsv.write_text("id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\n"
                   "1\tbed\tbed\t10\t4\t1\tbed\tbed\n2\tdoor\tdoor\t10\t8\t12\tdoor\tdoor\n")
    result = prepare(layout, tmp_path / "p", "--label-map", str(tsv))
    assert result.exit_code == 0, result.output
    objs = {o["object_id"]: o for o in load_prepared(tmp_path / "p").objects(A)}
    assert (objs[3]["nyu40_id"], objs[3]["nyu40_class"]) == (4, "bed")
    assert objs[21]["nyu40_id"] == 8 and objs[0]["nyu40_id"] is None


def test_resume_keeps_unchanged_scenes_and_redoes_changed_ones(layout, tmp_path):
    out = tmp_path / "prepared"
    assert prepare(layout, out).exit_code == 0
    again = prepare(layout, out)
    assert again.exit_code == 0 and "0 scene(s) prepared, 2 unchanged" in again.output
    seg = layout.scans / B / f"{B}_vh_clean_2.0.010000.segs.json"
    doc = json.loads(seg.read_text())
    doc["segIndices"][:4] = [7] * 4     # the first object's x-min corners move to the floor segment
    seg.write_text(json.dumps(doc))
    third = prepare(layout, out)
    assert third.exit_code == 0 and "1 scene(s) prepared, 1 unchanged" in third.output
    first = sorted(SCENE_OBJECTS[B])[0]
    assert not np.allclose(load_prepared(out).boxes(B)[first], layout.expected_boxes[B][first], atol=1e-3)


def _break(layout, what):
    scan = layout.scans / A
    files = {"alignment": scan / f"{A}.txt", "aggregation": scan / f"{A}.aggregation.json",
             "segments": scan / f"{A}_vh_clean_2.0.010000.segs.json", "mesh": scan / f"{A}_vh_clean_2.ply"}
    kind, role = what.split("-")
    if kind == "missing":
        os.remove(files[role])
    elif role == "segments":
        files[role].write_text(json.dumps({"segIndices": [1, 2, 3]}))      # not one per vertex
    elif role == "mesh":
        files[role].write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n")
    else:
        files[role].write_text(files[role].read_text()[:-9])                 # truncated JSON
    return files[role]


@pytest.mark.parametrize("what, message", [
    ("missing-alignment", "axis alignment not found"),
    ("missing-aggregation", "aggregation file not found"),
    ("malformed-aggregation", "malformed JSON"),
    ("missing-segments", "segments file not found"),
    ("malformed-segments", "segIndices must list one segment per mesh vertex"),
    ("missing-mesh", "mesh not found"),
    ("malformed-mesh", "PLY mesh"),
])
def test_a_bad_scene_is_one_line_naming_the_file_and_the_others_prepare(layout, tmp_path, what, message):
    out = tmp_path / "prepared"
    broken = _break(layout, what)
    result = prepare(layout, out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = error_lines(result)
    assert len(errors) == 2, result.output          # the scene's line + the count
    assert errors[0].startswith(f"error: {A}: {broken}") and message in errors[0], errors[0]
    assert "1 of 2 scene(s) failed" in errors[1]
    p = load_prepared(out)
    assert p.scene_ids == [B] and A in p.index["failed"]
    assert A not in load_gt_boxes_file(out / "gt_boxes.json")
    with pytest.raises(DataError, match="was not prepared"):
        p.boxes(A)


def test_missing_alignment_opt_out_is_recorded(layout, tmp_path):
    os.remove(layout.scans / A / f"{A}.txt")
    out = tmp_path / "prepared"
    result = prepare(layout, out, "--allow-missing-alignment")
    assert result.exit_code == 0, result.output
    assert f"warning: {A}: no axis alignment; identity used" in result.output
    p = load_prepared(out)
    assert p.alignment(A) == "missing-allowed" and p.alignment(B) == "file"
    assert np.array_equal(p.axis_align(A), np.eye(4))


def test_a_scene_that_breaks_after_preparing_loses_its_old_boxes(layout, tmp_path):
    out = tmp_path / "prepared"
    assert prepare(layout, out).exit_code == 0
    _break(layout, "missing-alignment")
    assert prepare(layout, out).exit_code == 1
    assert not (out / "scenes" / f"{A}.json").exists()
    assert A not in load_gt_boxes_file(out / "gt_boxes.json")


def test_scene_list_naming_a_scene_not_on_disk_fails_that_scene(layout, tmp_path):
    scene_list = tmp_path / "scannetv2_val.txt"
    scene_list.write_text(f"{A}\nscene0999_00\n{B}")
    result = prepare(layout, tmp_path / "p", "--scene-list", str(scene_list))
    assert result.exit_code == 1
    assert error_lines(result)[0] == f"error: scene0999_00: {layout.scans / 'scene0999_00'}: scan folder not found"
    assert load_prepared(tmp_path / "p").scene_ids == [A, B]


def test_annotations_of_missing_scenes_and_objects_are_counted_warnings(layout, tmp_path):
    def rec(scene, oid, ann):
        return {"scene_id": scene, "object_id": str(oid), "object_name": "door", "ann_id": str(ann),
                "description": "the door that is far from the bed .", "token": ["the", "door"]}

    refer = tmp_path / "ScanRefer_filtered_val.json"
    refer.write_text(json.dumps([rec(A, 21, 0), rec(A, 26, 0), rec(A, 999, 0), rec(B, 8, 0),
                                 rec("scene0378_00", 2, 3), rec("scene0378_00", 2, 4)]))
    out = tmp_path / "prepared"
    result = prepare(layout, out, "--annotations", f"scanrefer={refer}")
    assert result.exit_code == 0, result.output
    assert ("warning: scanrefer: 2 of 6 record(s) are for scenes not prepared (e.g. scene0378_00)"
            in result.output)
    assert "warning: scanrefer: 1 of 6 record(s) refer to objects not in the scan (e.g. scene0046_00 object 999)" \
        in result.output
    check = load_prepared(out).index["annotation_check"]["scanrefer"]
    assert (check["records"], check["scene_not_prepared"], check["object_not_in_scan"]) == (6, 2, 1)


def test_bad_command_lines_are_one_line(layout, tmp_path):
    r = prepare(layout, tmp_path / "p", "--annotations", "scanrefer")
    assert r.exit_code == 2 and "TASK=FILE" in r.output
    r = runner.invoke(app, ["prepare", "scannet", "--scans", str(tmp_path / "nope"), "--posed-images",
                            str(layout.posed_images), "-o", str(tmp_path / "p")])
    assert r.exit_code == 2 and "scans folder not found" in r.output and "Traceback" not in r.output


def test_library_refuses_a_missing_alignment(layout):
    os.remove(layout.scans / A / f"{A}.txt")
    with pytest.raises(DataError, match=f"{A}.txt: axis alignment not found"):
        boxes_from_scannet_scan(layout.scans / A, A)


def test_training_reads_the_prepared_folder_and_never_assumes_identity(layout, tmp_path):
    import torch

    from vidllm_core.training.data import SceneClips

    out = tmp_path / "prepared"
    assert prepare(layout, out).exit_code == 0
    clips = SceneClips(out, frames=2, image_size=42)
    assert [s.scene_id for s in clips.scenes] == [A, B]
    assert np.allclose(clips.scenes[0].axis_align, layout.alignments[A], atol=1e-8)
    # bare posed images (ScanNet keeps <scene>.txt in scans/, not there): Stage 1 runs, language is refused
    bare = SceneClips(layout.posed_images, frames=2, image_size=42)
    assert bare.scenes[0].axis_align is None
    assert torch.isnan(bare[0]["box_frame"]).all()          # a placeholder no prompt uses
    with pytest.raises(DataError, match="have no axis alignment"):
        bare.language = {A: [object()]}                     # any language sample of that scene


def test_eval_scores_against_the_prepared_boxes(layout, tmp_path):
    """Oracle: the analytic aligned boxes as ScanRefer predictions score Acc@0.5 = 1 with `--prepared`; the same
    objects' boxes in the raw (unaligned) frame score 0, so the alignment is what the scorer uses."""
    out = tmp_path / "prepared"
    assert prepare(layout, out).exit_code == 0
    targets = [(A, 3), (A, 21), (B, 8), (B, 25)]
    refer = tmp_path / "refer.json"
    refer.write_text(json.dumps([{"scene_id": s, "object_id": str(o), "object_name": SCENE_OBJECTS[s][o],
                                  "ann_id": "0", "description": f"the {SCENE_OBJECTS[s][o]} .",
                                  "token": ["the", SCENE_OBJECTS[s][o], "."]} for s, o in targets]))
    for s in (A, B):                            # the control: the same objects' boxes in the unaligned frame
        os.remove(layout.scans / s / f"{s}.txt")
    raw = {s: boxes_from_scannet_scan(layout.scans / s, s, allow_missing_alignment=True) for s in (A, B)}
    for name, boxes, expected in (("oracle", layout.expected_boxes, 1.0), ("unaligned", raw, 0.0)):
        preds = tmp_path / f"{name}.jsonl"
        preds.write_text("".join(json.dumps({"scene_id": s, "object_id": str(o), "ann_id": "0",
                                             "box": [float(v) for v in boxes[s][o]]}) + "\n" for s, o in targets))
        res = runner.invoke(app, ["eval", "scanrefer", "-a", str(refer), "--prepared", str(out), "--predictions",
                                  str(preds), "-o", str(tmp_path / name), "--json"])
        assert res.exit_code == 0, res.output
        doc = json.loads((tmp_path / name / "metrics.json").read_text())
        assert doc["metrics"]["Acc@0.5"] == expected, name
        assert doc["run"]["prepared"] == str(out.resolve())


def test_eval_model_places_boxes_only_with_an_alignment(layout, tmp_path):
    """`eval --model` on bare posed images (no <scene>.txt there) is one line; with --prepared it runs, recorded."""
    out, model = tmp_path / "prepared", tmp_path / "M"
    assert prepare(layout, out).exit_code == 0
    assert runner.invoke(app, ["init", "--preset", "tiny", "-o", str(model)]).exit_code == 0
    refer = tmp_path / "refer.json"
    refer.write_text(json.dumps([{"scene_id": A, "object_id": "3", "object_name": "bed", "ann_id": "0",
                                  "description": "the bed .", "token": ["the", "bed", "."]}]))
    common = ["eval", "scanrefer", "--model", str(model), "-a", str(refer), "--frames", "2"]
    bare = runner.invoke(app, [*common, "--scenes", str(layout.posed_images), "--gt-boxes",
                               str(out / "gt_boxes.json"), "-o", str(tmp_path / "bare")])
    assert bare.exit_code == 2 and "Traceback" not in bare.output
    assert f"error: scene {A}: no axis alignment" in bare.output and "--prepared" in bare.output
    res = runner.invoke(app, [*common, "--prepared", str(out), "-o", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert doc["run"]["prepared"] == str(out.resolve())   # its posed images were the scenes (no --scenes given)
    assert not any(n.startswith("axis alignment: identity") for n in doc["notes"])


def test_a_scene_without_posed_images_is_one_line(layout, tmp_path):
    import shutil

    shutil.rmtree(layout.posed_images / B)
    result = prepare(layout, tmp_path / "p")
    assert result.exit_code == 1
    assert error_lines(result)[0] == f"error: {B}: {layout.posed_images / B}: posed-images folder not found"
    assert load_prepared(tmp_path / "p").scene_ids == [A]


def test_a_new_posed_frame_prepares_the_scene_again(layout, tmp_path):
    import shutil

    out = tmp_path / "prepared"
    assert prepare(layout, out).exit_code == 0
    shutil.copy(layout.posed_images / A / "00000.jpg", layout.posed_images / A / "00990.jpg")
    shutil.copy(layout.posed_images / A / "00000.txt", layout.posed_images / A / "00990.txt")
    again = prepare(layout, out)
    assert again.exit_code == 0 and "1 scene(s) prepared, 1 unchanged" in again.output
    assert load_prepared(out).index["scenes"][A]["frames"] == 4
