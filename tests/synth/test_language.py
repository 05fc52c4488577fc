"""Annotations are checked against scene.json geometry with an independent re-implementation of each phrase."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from vidllm_core.data.synth import CATEGORIES, read_annotations, read_split
from vidllm_core.data.synth.phrasing import QUESTION_TYPE, parse

PLURAL = {c.plural: name for name, c in CATEGORIES.items()}
CAT = "|".join(sorted(CATEGORIES, key=len, reverse=True))
COL = r"red|green|blue|yellow|white|black|brown|gray|orange|purple|pink"


def _xy(o: dict) -> np.ndarray:
    return np.array(o["position"][:2])


def resolve(phrase: str, objs: list[dict]) -> list[int]:
    """Object ids a noun phrase ("the [colour] cat [closest to|farthest from|on] the landmark") denotes."""
    m = re.fullmatch(rf"(?:the )?(?:(?P<col>{COL}) )?(?P<cat>{CAT})(?: (?P<rel>closest to|farthest from|on) the "
                     rf"(?P<lm>{CAT}))?", phrase)
    assert m, f"unparsed phrase {phrase!r}"
    pool = [o for o in objs if o["category"] == m["cat"] and (m["col"] is None or o["colour"] == m["col"])]
    if m["rel"] is None:
        return [o["id"] for o in pool]
    anchors = [o for o in objs if o["category"] == m["lm"]]
    assert len(anchors) == 1, f"landmark {m['lm']!r} is not unique"
    a = anchors[0]
    if m["rel"] == "on":
        return [o["id"] for o in pool if o["support"] == a["id"]]
    d = {o["id"]: float(np.linalg.norm(_xy(o) - _xy(a))) for o in pool}
    best = min(d.values()) if m["rel"] == "closest to" else max(d.values())
    return [i for i, v in d.items() if v == best]


@pytest.fixture(scope="module")
def data(synth_out: Path, scene_metas: dict) -> dict:
    recs = {s: read_annotations(synth_out, s) for s in ("train", "val", "test")}
    return {"recs": recs, "objs": {k: v["objects"] for k, v in scene_metas.items()}}


def _all(data: dict, key: str) -> list[dict]:
    return [r for s in data["recs"].values() for r in s[key]]


def test_every_benchmark_has_records(data: dict) -> None:
    for key in ("scanqa", "sqa3d_questions", "scanrefer", "multi3drefer", "nr3d", "sr3d"):
        assert len(_all(data, key)) > 5, key


def test_scanqa_answers_follow_geometry(data: dict) -> None:
    kinds = set()
    for r in _all(data, "scanqa"):
        objs = data["objs"][r["scene_id"]]
        by_id = {o["id"]: o for o in objs}
        parsed = parse(r["question"])
        assert parsed is not None, r["question"]
        m, ans = parsed.slots, r["answers"][0]
        assert r["question_type"] == QUESTION_TYPE[parsed.kind]
        assert (r["phrasing"] == "heldout") == parsed.heldout
        if parsed.kind == "counting":
            cat = PLURAL[m["plural"]]
            assert int(ans) == sum(o["category"] == cat for o in objs)
            assert all(by_id[i]["visible"] for i in r["object_ids"])
            kinds.add("count")
        elif parsed.kind == "colour":
            ids = resolve(m["ref"], objs)
            assert len(ids) == 1 and ans == by_id[ids[0]]["colour"] and r["object_ids"] == ids
            kinds.add("colour")
        elif parsed.kind == "existence":
            cat = m["a_cat"].split(" ", 1)[1]
            assert ans == ("yes" if any(o["category"] == cat for o in objs) else "no")
            kinds.add("exist")
        elif parsed.kind == "height":
            ids = resolve(m["ref"], objs)
            assert len(ids) == 1 and ans == f"{by_id[ids[0]]['size'][2]:.1f} meters"
            kinds.add("size")
        elif parsed.kind == "distance":
            a, b = resolve(m["ref"], objs), resolve(m["ref2"], objs)
            assert len(a) == 1 and len(b) == 1
            assert ans == f"{np.linalg.norm(_xy(by_id[a[0]]) - _xy(by_id[b[0]])):.1f} meters"
            kinds.add("distance")
        elif parsed.kind == "location":
            ids = resolve(m["ref"], objs)
            assert len(ids) == 1
            o = by_id[ids[0]]
            if ans.startswith("on the "):
                assert by_id[o["support"]]["category"] == ans[7:]
            kinds.add("location")
        elif parsed.kind == "next_to":
            ids = resolve(m["ref"], objs)
            assert len(ids) == 1 and by_id[r["object_ids"][1]]["category"] == ans
            kinds.add("relation")
        for i in r["object_ids"]:
            assert by_id[i]["visible"]
    assert {"count", "colour", "exist", "size", "distance", "location"} <= kinds


def test_scanqa_phrasings_vary_and_held_out_ones_are_never_trained_on(data: dict) -> None:
    train = data["recs"]["train"]["scanqa"]
    assert all(r["phrasing"] == "template" for r in train)
    counting = {r["question"].replace(parse(r["question"]).slots["plural"], "X") for r in train
                if r["question_type"] == "counting"}
    assert len(counting) >= 2, counting  # several training phrasings of one kind
    assert "how many X are there?" in counting or len(counting) >= 3
    for split in ("val", "test"):
        recs = data["recs"][split]["scanqa"]
        ids = {r["question_id"] for r in recs}
        held = [r for r in recs if r["phrasing"] == "heldout"]
        assert held and all(r["question_id"][:-1] in ids for r in held)  # each has its template twin
        assert all(parse(r["question"]).heldout for r in held)


def test_scanrefer_descriptions_are_unique(data: dict) -> None:
    for r in _all(data, "scanrefer"):
        objs = data["objs"][r["scene_id"]]
        d = r["description"]
        m = re.match(rf"this is a ({COL}) ({CAT})\. it is (?:the only (.+) in the room|(.+?))\.", d)
        assert m, d
        target = int(r["object_id"])
        by_id = {o["id"]: o for o in objs}
        assert by_id[target]["colour"] == m[1] and by_id[target]["category"] == m[2]
        assert r["object_name"] == m[2].replace(" ", "_")
        ids = resolve(m[3] or m[4], objs)
        assert ids == [target], d
        assert r["token"][:4] == ["this", "is", "a", m[1]]


def test_multi3drefer_target_sets(data: dict) -> None:
    types = set()
    for r in _all(data, "multi3drefer"):
        objs = data["objs"][r["scene_id"]]
        d = r["description"]
        if m := re.fullmatch(rf"the ({COL}) ({CAT}) in the room\.", d):
            ids = resolve(f"the {m[1]} {m[2]}", objs)
        elif m := re.fullmatch(r"all the (.+) in the room\.", d):
            ids = [o["id"] for o in objs if o["category"] == PLURAL[m[1]]]
        elif m := re.fullmatch(rf"the ({COL}) (.+) in the room\.", d):
            ids = [o["id"] for o in objs if o["category"] == PLURAL[m[2]] and o["colour"] == m[1]]
        else:
            m = re.match(rf"this is a ({COL}) ({CAT})\. it is (?:the only (.+) in the room|(.+?))\.", d)
            ids = resolve(m[3] or m[4], objs)
        assert sorted(ids) == sorted(r["object_ids"]), d
        n_same = sum(o["category"] == r["object_name"].replace("_", " ") for o in objs)
        expect = ("zt" if not ids else "st" if len(ids) == 1 else "mt")
        assert r["eval_type"].startswith(expect)
        if expect != "mt":
            assert r["eval_type"].endswith("w_d" if n_same > len(ids) else "wo_d")
        types.add(r["eval_type"][:2])
    assert types == {"zt", "st", "mt"}


def test_sr3d_and_nr3d_targets(data: dict) -> None:
    for r in _all(data, "sr3d"):
        objs = data["objs"][r["scan_id"]]
        by_id = {o["id"]: o for o in objs}
        t = by_id[r["target_id"]]
        assert sorted(r["distractor_ids"]) == sorted(o["id"] for o in objs if o["category"] == t["category"] and o["id"] != t["id"])
        assert r["distractor_ids"], "Sr3D needs same-class distractors"
        m = re.fullmatch(rf"(?:find )?the ({CAT}) that is (closest to|farthest from|on|supporting|in front of|behind) the ({CAT})",
                         r["utterance"])
        assert m and m[1] == t["category"], r["utterance"]
        a = by_id[r["anchor_ids"][0]]
        assert a["category"] == m[3]
        pool = [o for o in objs if o["category"] == t["category"]]
        if m[2] in ("closest to", "farthest from", "on"):
            assert resolve(f"the {m[1]} {m[2]} the {m[3]}", objs) == [t["id"]]
        elif m[2] == "supporting":
            assert a["support"] == t["id"] and all(a["support"] != o["id"] for o in pool if o is not t)
        else:
            front = np.array(a["front"])
            ang = {o["id"]: math.degrees(math.acos(np.clip(front @ (_xy(o) - _xy(a)) / np.linalg.norm(_xy(o) - _xy(a)), -1, 1)))
                   for o in pool}
            inside = [i for i, g in ang.items() if (g < 90 if m[2] == "in front of" else g > 90)]
            assert inside == [t["id"]], r["utterance"]
    for r in _all(data, "nr3d"):
        objs = data["objs"][r["scan_id"]]
        phrase = re.sub(r"^(find |the )", "", r["utterance"].lower()).rstrip(".")
        assert resolve(phrase, objs) == [r["target_id"]], r["utterance"]
        n = int(r["stimulus_id"].split("-")[2])
        assert n == sum(o["category"] == r["instance_type"] for o in objs) >= 2


def test_sqa3d_directions(data: dict) -> None:
    seen = 0
    for split in data["recs"].values():
        anns = {a["question_id"]: a for a in split["sqa3d_annotations"]}
        for q in split["sqa3d_questions"]:
            a = anns[q["question_id"]]
            objs = data["objs"][q["scene_id"]]
            pos = np.array([a["position"]["x"], a["position"]["y"]])
            yaw = 2 * math.atan2(a["rotation"]["_z"], a["rotation"]["_w"])
            ans = a["answers"][0]["answer"]
            if m := re.fullmatch(r"Is (.+) on my left or on my right\?", q["question"]):
                (i,) = resolve(m[1], objs)
                v = _xy(objs[i]) - pos
                cross = math.cos(yaw) * v[1] - math.sin(yaw) * v[0]
                assert ans == ("left" if cross > 0 else "right")
                seen += 1
            elif m := re.fullmatch(r"Which one is closer to me, (.+) or (.+)\?", q["question"]):
                (i,), (j,) = resolve(m[1], objs), resolve(m[2], objs)
                di, dj = np.linalg.norm(_xy(objs[i]) - pos), np.linalg.norm(_xy(objs[j]) - pos)
                assert ans == (objs[i] if di < dj else objs[j])["category"]
                seen += 1
    assert seen > 0


def test_splits_partition_scenes(synth_out: Path, data: dict) -> None:
    ids = {s: read_split(synth_out, s) for s in ("train", "val", "test")}
    assert ids == {"train": ["synth0000_00", "synth0001_00"], "val": ["synth0002_00"], "test": ["synth0003_00"]}
    for s, recs in data["recs"].items():
        assert {r["scene_id"] for r in recs["scanqa"]} <= set(ids[s])
        assert all(r["is_train"] == (s == "train") for r in recs["sr3d"])


def test_project_benchmark_loaders_read_the_output(synth_out: Path) -> None:
    bm = pytest.importorskip("vidllm_core.data.benchmarks")
    ann = synth_out / "annotations"
    for s in ("train", "val", "test"):
        assert len(bm.load_scanqa(ann / f"ScanQA_v1.0_{s}.json")) == len(read_annotations(synth_out, s)["scanqa"])
        bm.load_scanrefer(ann / f"ScanRefer_filtered_{s}.json")
        bm.load_multi3drefer(ann / f"multi3drefer_{s}.json")
        bm.load_referit3d(ann / f"nr3d_{s}.csv")
        bm.load_referit3d(ann / f"sr3d_{s}.csv")
        bm.load_sqa3d(ann / f"v1_balanced_questions_{s}_scannetv2.json", ann / f"v1_balanced_sqa_annotations_{s}_scannetv2.json")
    scene = bm.open_scene(synth_out / "posed_images", "synth0000_00")
    assert len(scene.frames) == 12
