"""Benchmark loaders on the real records of tests/fixtures/benchmarks (counts and types per FORMATS.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures import BENCH, unpack_full_benchmarks
from vidllm_core.data.benchmarks import (Problems, find_sqa3d_pair, load_multi3drefer, load_referit3d, load_scan2cap,
                                         load_scanqa, load_scanrefer, load_sqa3d, scan2cap_corpus, scene_path)
from vidllm_core.data.benchmarks.referit3d import parse_stimulus_id
from vidllm_core.data.benchmarks.sqa3d import sqa3d_question_type
from vidllm_core.errors import DataError

SQA_Q = "sqa3d_v1_balanced_questions_test_scannetv2"
SQA_A = "sqa3d_v1_balanced_sqa_annotations_test_scannetv2"


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The complete benchmark files, unpacked from their .xz copies."""
    return unpack_full_benchmarks(tmp_path_factory.mktemp("full"))


def _is_ints(xs) -> bool:
    return isinstance(xs, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in xs)


def _is_strs(xs) -> bool:
    return isinstance(xs, tuple) and all(isinstance(x, str) for x in xs)


# --- real samples -----------------------------------------------------------------------------------------------

def test_scanqa_sample_types() -> None:
    qs = load_scanqa(BENCH / "scanqa_val_sample.json")
    assert len(qs) == 20
    raw = json.loads((BENCH / "scanqa_val_sample.json").read_text())
    for q, r in zip(qs, raw):
        assert q.question_id == r["question_id"] and q.question_id.startswith("val-scene")
        assert q.scene_id.startswith("scene") and q.question == r["question"]
        assert _is_strs(q.answers) and list(q.answers) == r["answers"] and len(q.answers) >= 1
        assert _is_ints(q.object_ids) and _is_strs(q.object_names) and len(q.object_ids) == len(q.object_names)
        assert q.uid == q.question_id
    with pytest.raises(Exception):
        qs[0].question = "x"  # frozen


def test_scanqa_full_counts(full: Path) -> None:
    qs = load_scanqa(full / "ScanQA_v1.0_val.json")
    assert len(qs) == 4675 and len({q.scene_id for q in qs}) == 71
    assert Counter(len(q.answers) for q in qs)[2] == 4649     # FORMATS.md: 4,649 / 4,675 have two answers


def test_scanqa_test_split_without_answers(tmp_path: Path) -> None:
    p = tmp_path / "test_wo_obj.json"
    p.write_text(json.dumps([{"question_id": "test-scene0707-0", "scene_id": "scene0707_00", "question": "What?"}]))
    (q,) = load_scanqa(p)
    assert q.answers == () and q.object_ids == ()


def test_sqa3d_sample_join() -> None:
    qs = load_sqa3d(BENCH / f"{SQA_Q}_sample.json", BENCH / f"{SQA_A}_sample.json")
    assert len(qs) == 20
    ann = {a["question_id"]: a for a in json.loads((BENCH / f"{SQA_A}_sample.json").read_text())["annotations"]}
    for q in qs:
        assert isinstance(q.question_id, int) and q.uid == str(q.question_id)
        assert len(q.answers) == 1 and q.answers[0] == ann[q.question_id]["answers"][0]["answer"]
        assert q.question_type in ("what", "is", "how", "can", "which", "others")
        assert _is_strs(q.alternative_situations) and isinstance(q.situation, str)
        assert q.position is not None and len(q.position) == 3 and q.rotation is not None and len(q.rotation) == 4
        assert q.prompt == f"{q.situation} {q.question}"


def test_sqa3d_full_counts_and_pairing(full: Path) -> None:
    q, a = find_sqa3d_pair([full / f"{SQA_A}.json", full / f"{SQA_Q}.json"])   # either order
    assert q.name.startswith(SQA_Q) and a is not None and a.name.startswith(SQA_A)
    assert find_sqa3d_pair([full / f"{SQA_Q}.json"])[1] == full / f"{SQA_A}.json"   # sibling found by name
    qs = load_sqa3d(q, a)
    assert len(qs) == 3519 and len({x.scene_id for x in qs}) == 67
    assert set(Counter(x.question_type for x in qs)) == {"what", "is", "how", "can", "which", "others"}


def test_sqa3d_question_type_prefix_rule() -> None:
    assert sqa3d_question_type("  What is it?") == "what"
    assert sqa3d_question_type("Island?") == "is"          # the upstream rule is a prefix test
    assert sqa3d_question_type("Where am I?") == "others"


def test_scanrefer_samples_types() -> None:
    val = load_scanrefer(BENCH / "scanrefer_val_sample.json")
    test = load_scanrefer(BENCH / "scanrefer_test_sample.json")
    assert len(val) == 20 and len(test) == 5
    raw = json.loads((BENCH / "scanrefer_val_sample.json").read_text())
    for d, r in zip(val, raw):
        assert isinstance(r["object_id"], str) and d.object_id == int(r["object_id"])   # str in the file, int here
        assert d.ann_id == int(r["ann_id"]) and list(d.tokens) == r["token"]
        assert d.uid == f"{d.scene_id}|{d.object_id}|{d.ann_id}"
        assert d.object_key == f"{d.scene_id}|{d.object_id}|{d.object_name}"


def test_scanrefer_full_counts_and_scan2cap_corpus(full: Path) -> None:
    ds = load_scanrefer(full / "ScanRefer_filtered_test.json")
    assert len(ds) == 5410 and len({d.scene_id for d in ds}) == 97
    objects = scan2cap_corpus(ds)
    assert len(objects) == 1103
    derived = json.loads((BENCH / "scan2cap_corpus_DERIVED_from_scanrefer_test.json").read_text())
    ours = {o.key: list(o.references) for o in objects}
    for key, refs in derived.items():
        assert ours[key] == refs
    assert len(load_scanrefer(full / "ScanRefer_filtered_val_sampled1000.json")) == 1000


def test_scan2cap_from_corpus_file() -> None:
    objs = load_scan2cap(BENCH / "scan2cap_corpus_DERIVED_from_scanrefer_test.json")
    assert len(objs) == 5 and objs[0].key == "scene0707_00|3|trash_can" and objs[0].object_id == 3
    assert all(r.startswith("sos ") and r.endswith(" eos") for o in objs for r in o.references)
    assert len(load_scan2cap(BENCH / "scanrefer_test_sample.json")) == 5     # a ScanRefer list works too


def test_nr3d_full_counts(full: Path) -> None:
    us = load_referit3d(full / "nr3d_test.csv")
    assert len(us) == 7485 and len({u.scene_id for u in us}) == 130
    # FORMATS.md: easy 3,669 / hard 3,816 / view-dep 2,478 / view-indep 5,007
    assert sum(not u.hard for u in us) == 3669 and sum(u.hard for u in us) == 3816
    assert sum(u.view_dependent for u in us) == 2478
    assert all(u.dataset == "nr3d" and u.mentions_target_class for u in us)


def test_nr3d_sr3d_samples_types() -> None:
    nr = load_referit3d(BENCH / "nr3d_test_sample.csv")
    sr = load_referit3d(BENCH / "sr3d_test_sample.csv")
    assert len(nr) == 20 and len(sr) == 20
    u = nr[0]
    assert (u.scene_id, u.target_id, u.n_objects_of_class, u.distractor_ids) == ("scene0565_00", 25, 4, (0, 1, 24))
    assert u.hard and u.view_dependent and u.tokens[:2] == ("the", "chair") and u.uid == "0"
    s = sr[0]
    assert (s.target_id, s.distractor_ids, s.anchor_ids, s.reference_type) == (42, (55,), (85,), "farthest")
    assert not s.hard and s.dataset == "sr3d"
    assert all(_is_ints(x.distractor_ids) and _is_strs(x.tokens) for x in nr + sr)


def test_stimulus_id_with_multiword_class() -> None:
    assert parse_stimulus_id("scene0164_02-kitchen_cabinet-2-2-1", "scene0164_02", "kitchen cabinet") == (2, 2, (1,))


MULTI3DREFER = [  # written from the fields reconstructed in FORMATS.md sec. 5 (no real sample exists)
    {"scene_id": "scene0011_00", "ann_id": 0, "object_name": "chair", "object_ids": [], "description": "a unicorn",
     "eval_type": "zt_wo_d"},
    {"scene_id": "scene0011_00", "ann_id": 1, "object_name": "chair", "object_ids": [3], "description": "the chair",
     "eval_type": "st_w_d"},
    {"scene_id": "scene0011_00", "ann_id": 2, "object_name": "chair", "object_ids": [3, 4], "description": "chairs",
     "eval_type": "mt"},
]


def test_multi3drefer_written_file(tmp_path: Path) -> None:
    p = tmp_path / "multi3drefer_val.json"
    p.write_text(json.dumps(MULTI3DREFER))
    ds = load_multi3drefer(p)
    assert [d.eval_type for d in ds] == ["zt_wo_d", "st_w_d", "mt"]
    assert ds[0].object_ids == () and ds[2].object_ids == (3, 4) and ds[1].uid == "scene0011_00|1"
    bad = [dict(MULTI3DREFER[1], eval_type="mt")]
    p.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="does not match 1 target"):
        load_multi3drefer(p)


# --- validation -------------------------------------------------------------------------------------------------

def _write(tmp_path: Path, obj, name: str = "a.json") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _scanqa_rows() -> list[dict]:
    return json.loads((BENCH / "scanqa_val_sample.json").read_text())[:3]


def test_malformed_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"a\.json: malformed JSON at line 1"):
        load_scanqa(_write(tmp_path, '[{"question_id": "x",'))


def test_missing_field_names_file_and_record(tmp_path: Path) -> None:
    rows = _scanqa_rows()
    del rows[1]["question"]
    with pytest.raises(DataError, match=r"a\.json: record 1: missing field\(s\) question"):
        load_scanqa(_write(tmp_path, rows))


def test_duplicate_ids(tmp_path: Path) -> None:
    rows = _scanqa_rows()
    rows[2]["question_id"] = rows[0]["question_id"]
    with pytest.raises(DataError, match="record 2 .*duplicate question_id"):
        load_scanqa(_write(tmp_path, rows))
    refer = json.loads((BENCH / "scanrefer_val_sample.json").read_text())[:2]
    refer.append(dict(refer[0]))
    with pytest.raises(DataError, match="duplicate"):
        load_scanrefer(_write(tmp_path, refer, "r.json"))


@pytest.mark.parametrize("bad", ["../scene0000_00", "/etc", "..", "a/b", ""])
def test_scene_id_escaping(tmp_path: Path, bad: str) -> None:
    rows = _scanqa_rows()
    rows[0]["scene_id"] = bad
    with pytest.raises(DataError, match="record 0"):
        load_scanqa(_write(tmp_path, rows))
    with pytest.raises(DataError):
        scene_path(tmp_path, bad)


def test_sqa3d_orphan_and_mismatch(tmp_path: Path) -> None:
    q = json.loads((BENCH / f"{SQA_Q}_sample.json").read_text())
    a = json.loads((BENCH / f"{SQA_A}_sample.json").read_text())
    a["annotations"] = a["annotations"][1:]
    with pytest.raises(DataError, match="no annotation with this question_id"):
        load_sqa3d(_write(tmp_path, q, "q.json"), _write(tmp_path, a, "a.json"))


def test_csv_malformed_and_missing_columns(tmp_path: Path) -> None:
    text = (BENCH / "nr3d_test_sample.csv").read_text()
    header, *rows = text.splitlines()
    p = tmp_path / "nr3d.csv"
    p.write_text(header.replace("target_id", "target") + "\n" + rows[0] + "\n")
    with pytest.raises(DataError, match="lacks column\\(s\\) target_id"):
        load_referit3d(p)
    p.write_text(header + "\n" + rows[0] + "\n" + 'scene0000_00-x-2-1-2,"unterminated\n')
    with pytest.raises(DataError, match="nr3d.csv"):
        load_referit3d(p)
    p.write_text(header + "\n" + rows[0].replace("['the', 'chair'", "['the', chair") + "\n")
    with pytest.raises(DataError, match="record 0 .*tokens"):
        load_referit3d(p)


def test_lenient_mode_lists_every_problem(tmp_path: Path) -> None:
    rows = _scanqa_rows()
    rows[0]["scene_id"] = "../x"
    del rows[1]["question"]
    problems = Problems(strict=False)
    ok = load_scanqa(_write(tmp_path, rows), problems)
    assert len(ok) == 1 and len(problems.messages) == 2
