"""`vidllm eval` end to end through `typer.testing.CliRunner`: known-fraction predictions, baselines, shards,
dry-run and every bad-input case of issue 4."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from test_scannet import make_scene, write_raw_scan  # noqa: E402

from tests.fixtures import BENCH  # noqa: E402

SCANQA = BENCH / "scanqa_val_sample.json"
SCANREFER = BENCH / "scanrefer_val_sample.json"
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, ["eval", *map(str, args)])


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


# --- ScanQA: 7 of 20 right --------------------------------------------------------------------------------------

def scanqa_predictions(tmp_path: Path, right: set[int]) -> Path:
    rows = json.loads(SCANQA.read_text())
    preds = [{"question_id": r["question_id"], "answer": r["answers"][0] if i in right else f"qzx wrong {i}"}
             for i, r in enumerate(rows)]
    return jsonl(tmp_path / "preds.jsonl", preds)


def test_scanqa_known_fraction(tmp_path: Path) -> None:
    right = {0, 2, 3, 7, 11, 15, 19}
    preds = scanqa_predictions(tmp_path, right)
    res = invoke("scanqa", "--annotations", SCANQA, "--predictions", preds, "-o", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["EM@1"] == metrics["EM@1_raw"] == metrics["refined_EM@1"] == 7 / 20
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["metrics"]["EM@1"] == 7 / 20 and doc["predictions"]["matched"] == 20
    assert len((tmp_path / "out" / "predictions.jsonl").read_text().splitlines()) == 20
    table = invoke("scanqa", "--annotations", SCANQA, "--predictions", preds, "-o", tmp_path / "out2")
    assert table.exit_code == 0 and "EM@1" in table.stdout and "0.3500" in table.stdout


def test_scanqa_reports_the_papers_text_columns(tmp_path: Path) -> None:
    from vidllm_core.metrics import caption_scores

    rows = json.loads(SCANQA.read_text())
    right = {0, 2, 3, 7, 11, 15, 19}
    res = invoke("scanqa", "--annotations", SCANQA, "--predictions", scanqa_predictions(tmp_path, right),
                 "-o", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    answers = {r["question_id"]: (r["answers"][0] if i in right else f"qzx wrong {i}") for i, r in enumerate(rows)}
    lib = caption_scores(answers, {r["question_id"]: r["answers"] for r in rows}, pipeline="coco")
    for ours, theirs in (("CIDEr", "CIDEr"), ("BLEU-4", "Bleu_4"), ("METEOR", "METEOR"), ("ROUGE-L", "ROUGE_L")):
        assert metrics[ours] == pytest.approx(lib[theirs]), ours
    assert metrics["CIDEr"] > 0 and metrics["METEOR"] > 0 and metrics["meteor_backend"] == "python"
    all_right = invoke("scanqa", "--annotations", SCANQA, "--predictions", scanqa_predictions(tmp_path, set(range(20))),
                       "-o", tmp_path / "out2", "--json")
    best = json.loads(all_right.stdout)
    assert best["CIDEr"] > metrics["CIDEr"] and best["METEOR"] > metrics["METEOR"] and best["EM@1"] == 1.0
    table = invoke("scanqa", "--annotations", SCANQA, "--predictions", scanqa_predictions(tmp_path, right),
                   "-o", tmp_path / "out3")
    for column in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L", "EM@1"):
        assert column in table.stdout


def test_scanqa_missing_unknown_duplicate_are_counted(tmp_path: Path) -> None:
    rows = json.loads(SCANQA.read_text())
    preds = [{"question_id": r["question_id"], "answer": r["answers"][0]} for r in rows[:15]]   # 5 missing
    preds += [{"question_id": "val-scene9999-0", "answer": "x"}, {"question_id": "nope", "answer": "y"}]
    preds += [{"question_id": rows[0]["question_id"], "answer": "dup, ignored"}]
    res = invoke("scanqa", "-a", SCANQA, "--predictions", jsonl(tmp_path / "p.jsonl", preds), "-o", tmp_path / "o",
                 "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["EM@1"] == 15 / 20              # missing scored as wrong, duplicate not used
    err = res.stderr
    assert "warning: 2 prediction(s) have ids not in the evaluated questions" in err
    assert "warning: 1 duplicate prediction id(s)" in err
    assert "warning: 5 of 20 questions have no prediction" in err and "scored as wrong" in err


def test_scanqa_majority_baseline(tmp_path: Path) -> None:
    res = invoke("scanqa", "-a", SCANQA, "--baseline", "majority", "-o", tmp_path / "o", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(SCANQA.read_text())
    firsts = [r["answers"][0] for r in rows]
    best = max(sorted(set(firsts)), key=firsts.count)
    expected = sum(best in r["answers"] for r in rows) / 20
    assert json.loads(res.stdout)["EM@1_raw"] == pytest.approx(expected)
    assert "not held out" in res.stderr


# --- SQA3D per-type -----------------------------------------------------------------------------------------------

def test_sqa3d_per_type(tmp_path: Path) -> None:
    from vidllm_core.data.benchmarks import load_sqa3d

    qfile = BENCH / "sqa3d_v1_balanced_questions_test_scannetv2_sample.json"
    afile = BENCH / "sqa3d_v1_balanced_sqa_annotations_test_scannetv2_sample.json"
    qs = load_sqa3d(qfile, afile)
    preds = [{"question_id": q.question_id, "answer": q.answers[0] if q.question_type == "what" else "qzx"}
             for q in qs]
    res = invoke("sqa3d", "-a", qfile, "-a", afile, "--predictions", jsonl(tmp_path / "p.jsonl", preds),
                 "-o", tmp_path / "o", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    n_what = sum(q.question_type == "what" for q in qs)
    assert m["EM@1"] == n_what / 20 and m["per_type"]["what"]["EM@1"] == 1.0
    assert all(v["EM@1"] == 0.0 for k, v in m["per_type"].items() if k != "what")


# --- ScanRefer: 9 of 20 GT boxes --------------------------------------------------------------------------------

def scanrefer_gt(tmp_path: Path) -> tuple[list, Path]:
    rows = json.loads(SCANREFER.read_text())
    rng = np.random.default_rng(0)
    gt: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        box = np.concatenate([rng.uniform(-3, 3, 3), rng.uniform(0.3, 1.5, 3)])
        gt.setdefault(r["scene_id"], {})[r["object_id"]] = box.tolist()
    path = tmp_path / "gt_boxes.json"
    path.write_text(json.dumps(gt))
    return rows, path


def test_scanrefer_known_fraction_and_baselines(tmp_path: Path) -> None:
    rows, gt_path = scanrefer_gt(tmp_path)
    gt = json.loads(gt_path.read_text())
    right = set(range(0, 18, 2)) if False else {0, 1, 4, 5, 8, 9, 12, 13, 19}
    preds = []
    for i, r in enumerate(rows):
        box = np.array(gt[r["scene_id"]][r["object_id"]])
        if i not in right:
            box = box + np.array([10, 10, 10, 0, 0, 0])   # far away: IoU 0
        preds.append({"id": f"{r['scene_id']}|{r['object_id']}|{r['ann_id']}", "boxes": [box.tolist()]})
    p = jsonl(tmp_path / "p.jsonl", preds)
    res = invoke("scanrefer", "-a", SCANREFER, "--gt-boxes", gt_path, "--predictions", p, "-o", tmp_path / "o",
                 "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["Acc@0.25"] == m["Acc@0.5"] == 9 / 20 and m["n"] == 20
    assert m["n/unique"] + m["n/multiple"] == 20
    oracle = invoke("scanrefer", "-a", SCANREFER, "--gt-boxes", gt_path, "--baseline", "oracle-box",
                    "-o", tmp_path / "oracle", "--json")
    assert oracle.exit_code == 0 and json.loads(oracle.stdout)["Acc@0.5"] == 1.0
    # random proposal: the GT box plus 3 far boxes per scene -> deterministic for a seed, between 0 and 1
    props = tmp_path / "props"
    props.mkdir()
    for scene, objs in gt.items():
        boxes = [b for b in objs.values()] + [[20 + k, 20, 20, 1, 1, 1] for k in range(3)]
        np.save(props / f"{scene}.npy", np.asarray(boxes))
    outs = [invoke("scanrefer", "-a", SCANREFER, "--gt-boxes", gt_path, "--baseline", "random", "--proposals", props,
                   "-o", tmp_path / f"rnd{k}", "--json", "--seed", "3") for k in range(2)]
    assert outs[0].exit_code == 0, outs[0].output
    a, b = (json.loads(o.stdout)["Acc@0.5"] for o in outs)
    assert a == b and 0.0 < a < 1.0


def test_scanrefer_gt_from_raw_scans(tmp_path: Path) -> None:
    rows = json.loads(SCANREFER.read_text())[:4]
    ann = tmp_path / "refer.json"
    ann.write_text(json.dumps(rows))
    scans = tmp_path / "scans"
    boxes: dict[str, dict[int, np.ndarray]] = {}
    for k, r in enumerate(rows):
        boxes.setdefault(r["scene_id"], {})[int(r["object_id"])] = np.array([k, 0, 0, 1, 1, 1.0])
    for scene, objs in boxes.items():
        write_raw_scan(scans, scene, objs)
    preds = [{"scene_id": r["scene_id"], "object_id": r["object_id"], "ann_id": r["ann_id"],
              "box": [k if k < 3 else 50, 0, 0, 1, 1, 1]} for k, r in enumerate(rows)]
    args = ("scanrefer", "-a", ann, "--scenes", scans, "--predictions", jsonl(tmp_path / "p.jsonl", preds),
            "-o", tmp_path / "o", "--json")
    res = invoke(*args)   # the scans have no <scene>.txt: never a silent identity alignment
    assert res.exit_code == 2 and "axis alignment not found" in res.output
    assert "--allow-missing-alignment" in res.output
    res = invoke(*args, "--allow-missing-alignment")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["Acc@0.5"] == 3 / 4
    doc = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert doc["run"]["allow_missing_alignment"] is True
    identity = f"axis alignment: identity used for {len(boxes)} scene(s)"
    assert any(n.startswith(identity) for n in doc["notes"]), doc["notes"]


# --- Multi3DRefer, Nr3D, Scan2Cap -----------------------------------------------------------------------------

def test_multi3drefer_oracle_and_missing(tmp_path: Path) -> None:
    from test_loaders import MULTI3DREFER

    ann = tmp_path / "m.json"
    ann.write_text(json.dumps(MULTI3DREFER))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"scene0011_00": {"3": [0, 0, 0, 1, 1, 1], "4": [5, 0, 0, 1, 1, 1]}}))
    res = invoke("multi3drefer", "-a", ann, "--gt-boxes", gt, "--baseline", "oracle-box", "-o", tmp_path / "o",
                 "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["F1@0.5"] == 1.0
    preds = jsonl(tmp_path / "p.jsonl", [{"id": "scene0011_00|1", "boxes": [[0, 0, 0, 1, 1, 1]]}])
    res = invoke("multi3drefer", "-a", ann, "--gt-boxes", gt, "--predictions", preds, "-o", tmp_path / "o2", "--json")
    m = json.loads(res.stdout)
    assert m["F1@0.5"] == pytest.approx(1 / 3)      # the missing zero-target query is wrong, not a free 1


def test_nr3d_known_fraction(tmp_path: Path) -> None:
    from vidllm_core.data.benchmarks import load_referit3d

    us = load_referit3d(BENCH / "nr3d_test_sample.csv")
    preds = [{"id": u.uid, "object_id": u.target_id if i % 4 == 0 else u.target_id + 1000} for i, u in enumerate(us)]
    res = invoke("nr3d", "-a", BENCH / "nr3d_test_sample.csv", "--predictions", jsonl(tmp_path / "p.jsonl", preds),
                 "-o", tmp_path / "o", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["overall"] == 5 / 20
    hard = [i for i, u in enumerate(us) if u.hard]
    assert m["hard"] == pytest.approx(sum(i % 4 == 0 for i in hard) / len(hard))


def test_scan2cap_gating(tmp_path: Path) -> None:
    from vidllm_core.data.benchmarks import load_scan2cap

    ann = BENCH / "scan2cap_corpus_DERIVED_from_scanrefer_test.json"
    objs = load_scan2cap(ann)
    gt = {}
    for k, o in enumerate(objs):
        gt.setdefault(o.scene_id, {})[str(o.object_id)] = [k, 0, 0, 1, 1, 1]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    preds = [{"key": o.key, "caption": " ".join(o.references[0].split()[1:-1]),
              "box": [k if k < 2 else 40, 0, 0, 1, 1, 1]} for k, o in enumerate(objs)]
    res = invoke("scan2cap", "-a", ann, "--gt-boxes", gt_path, "--predictions", jsonl(tmp_path / "p.jsonl", preds),
                 "-o", tmp_path / "o", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["CIDEr"] > m["m@0.5"]["CIDEr"] > 0
    # gating = blank captions for the 3 objects whose box misses; compare with the metric on those inputs
    from vidllm_core.metrics import caption_scores

    refs = {o.key: [" ".join(r.split()[1:-1]) for r in o.references] for o in objs}
    cands = {p["key"]: (p["caption"] if k < 2 else "") for k, p in enumerate(preds)}
    assert m["m@0.5"]["CIDEr"] == pytest.approx(caption_scores(cands, refs, pipeline="scan2cap")["CIDEr"], abs=1e-12)


# --- shards and merge -------------------------------------------------------------------------------------------

def test_shards_merge_to_the_unsharded_result(tmp_path: Path) -> None:
    preds = scanqa_predictions(tmp_path, {1, 2, 3, 5, 8, 13})
    full = invoke("scanqa", "-a", SCANQA, "--predictions", preds, "-o", tmp_path / "full", "--json")
    sizes = []
    for i in range(3):
        r = invoke("scanqa", "-a", SCANQA, "--predictions", preds, "-o", tmp_path / f"s{i}", "--shard", f"{i}/3",
                   "--json")
        assert r.exit_code == 0, r.output
        sizes.append(json.loads((tmp_path / f"s{i}" / "metrics.json").read_text())["n"])
        assert "unknown" not in r.stderr        # other shards' ids are not "unknown"
    assert sum(sizes) == 20
    merged = invoke("scanqa", "--merge", *(tmp_path / f"s{i}" for i in range(3)), "-o", tmp_path / "merged", "--json")
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout) == json.loads(full.stdout)
    line = one_error_line(invoke("scanqa", "--merge", tmp_path / "s0", tmp_path / "s2", "-o", tmp_path / "m2"))
    assert "shard(s) 1/3 missing" in line
    limited = invoke("scanqa", "-a", SCANQA, "--predictions", preds, "-o", tmp_path / "lim", "--limit", "5", "--json")
    assert json.loads((tmp_path / "lim" / "metrics.json").read_text())["n"] == 5 and limited.exit_code == 0


# --- dry run ----------------------------------------------------------------------------------------------------

def test_dry_run_counts_and_problems(tmp_path: Path) -> None:
    res = invoke("scanqa", "-a", SCANQA, "--dry-run")
    assert res.exit_code == 0 and "20 questions, 20 scenes" in res.output and "no problems" in res.output
    rows = json.loads(SCANQA.read_text())
    rows[0]["scene_id"] = "../../etc"
    del rows[1]["answers"][0:0], rows[2]["question"]
    rows[3]["question_id"] = rows[4]["question_id"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    res = invoke("scanqa", "-a", bad, "--dry-run")
    assert res.exit_code == 1
    assert res.output.count("problem: ") == 3 and "escape" in res.output and "duplicate" in res.output
    make_scene(tmp_path / "scenes", "scene0000_00", bad_pose=True)
    (tmp_path / "scenes.txt").write_text("scene0000_00\nscene0001_00\n")
    res = invoke("depth", "-a", tmp_path / "scenes.txt", "--scenes", tmp_path / "scenes", "--dry-run", "--json")
    report = json.loads(res.stdout)
    assert report["counts"]["scenes_found"] == 1 and report["counts"]["frames_with_valid_pose"] == 2
    assert any("inf" in p for p in report["problems"]) and any("scene0001_00" in p for p in report["problems"])


# --- bad input: one line, non-zero ------------------------------------------------------------------------------

def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "o"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "empty predictions file" in one_error_line(invoke("scanqa", "-a", SCANQA, "--predictions", empty, "-o", out))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question_id": "val-scene0011-0", "answer": "x"}\n{"question_id": \n')
    assert "line 2: malformed JSON" in one_error_line(invoke("scanqa", "-a", SCANQA, "--predictions", broken, "-o", out))
    nofield = jsonl(tmp_path / "nofield.jsonl", [{"question_id": "val-scene0011-0"}])
    assert "missing field 'answer'" in one_error_line(invoke("scanqa", "-a", SCANQA, "--predictions", nofield, "-o", out))
    alien = jsonl(tmp_path / "alien.jsonl", [{"question_id": "test-1", "answer": "x"}])
    assert "none of its 1 prediction" in one_error_line(invoke("scanqa", "-a", SCANQA, "--predictions", alien, "-o", out))
    rows = json.loads(SCANQA.read_text())
    rows[5]["scene_id"] = "../scene0000_00"
    escape = tmp_path / "escape.json"
    escape.write_text(json.dumps(rows))
    preds = scanqa_predictions(tmp_path, {0})
    line = one_error_line(invoke("scanqa", "-a", escape, "--predictions", preds, "-o", out))
    assert "record 5" in line and "escape the scenes directory" in line
    malformed = tmp_path / "malformed.json"
    malformed.write_text("[{]")
    assert "malformed JSON" in one_error_line(invoke("scanqa", "-a", malformed, "--baseline", "majority", "-o", out))
    assert "--scenes" in one_error_line(invoke("scanqa", "-a", SCANQA, "--model", tmp_path, "-o", out))
    assert "exactly one of" in one_error_line(invoke("scanqa", "-a", SCANQA, "--baseline", "majority",
                                                     "--predictions", preds, "-o", out))
    assert "unknown task" in one_error_line(invoke("scanqq", "-a", SCANQA, "--baseline", "majority", "-o", out))
    assert "--shard" in one_error_line(invoke("scanqa", "-a", SCANQA, "--baseline", "majority", "-o", out,
                                              "--shard", "3/3"))
    assert "not defined for scanqa" in one_error_line(invoke("scanqa", "-a", SCANQA, "--baseline", "oracle-box",
                                                             "-o", out))
    assert "needs GT boxes" in one_error_line(invoke("scanrefer", "-a", SCANREFER, "--baseline", "oracle-box",
                                                     "-o", out))
    assert not (out / "metrics.json").exists()       # nothing half-written by the failed runs
