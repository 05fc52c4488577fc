"""Resumable predictions writer, model-hook wiring, sharding, and depth/pose/recon scoring from prediction dirs."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.data.benchmarks import Problems
from vidllm_core.errors import DataError
from vidllm_core.evaluation import TASKS, select, shard_index, write_predictions_resumable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from test_scannet import make_scene  # noqa: E402

from tests.fixtures import BENCH  # noqa: E402

runner = CliRunner()


class Boom(RuntimeError):
    pass


def test_resumable_writer_no_duplicates_no_gaps(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(10)]
    path = tmp_path / "predictions.jsonl"
    calls: list[str] = []

    def predict_then_crash(uid: str) -> dict:
        if len(calls) == 4:
            raise Boom
        calls.append(uid)
        return {"answer": uid.upper()}

    with pytest.raises(Boom):
        write_predictions_resumable(path, ids, predict_then_crash, id_key="question_id")
    assert len(path.read_text().splitlines()) == 4
    with path.open("a") as fh:                      # a half-written line from a killed process
        fh.write('{"question_id": "q4", "ans')
    res = write_predictions_resumable(path, ids, lambda uid: {"answer": uid.upper()}, id_key="question_id")
    assert (res.already_done, res.written, res.dropped_partial) == (4, 6, True)
    got = [json.loads(line) for line in path.read_text().splitlines()]
    assert [g["question_id"] for g in got] == ids and all(g["answer"] == g["question_id"].upper() for g in got)
    again = write_predictions_resumable(path, ids, lambda uid: pytest.fail("must not predict again"), "question_id")
    assert (again.already_done, again.written) == (10, 0)


def test_shards_partition_and_are_stable() -> None:
    class It:
        def __init__(self, uid: str) -> None:
            self.uid = uid

    items = [It(f"id{i}") for i in range(50)]
    parts = [select(items, shard=(i, 4)) for i in range(4)]
    assert sorted(x.uid for p in parts for x in p) == sorted(x.uid for x in items)
    assert shard_index("val-scene0011-0", 7) == shard_index("val-scene0011-0", 7)
    assert [x.uid for x in select(items, limit=3)] == ["id0", "id1", "id2"]


def test_model_hook_wiring_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model hook on the registry entry is all `--model` needs; a re-run skips what is already written."""
    rows = json.loads((BENCH / "scanqa_val_sample.json").read_text())
    truth = {r["question_id"]: r["answers"][0] for r in rows}
    seen: list[str] = []

    def hook(model_dir: Path, record, ctx) -> dict:
        seen.append(record.uid)
        return {"answer": truth[record.uid] if len(seen) % 2 else "qzx"}

    monkeypatch.setitem(TASKS, "scanqa", dataclasses.replace(TASKS["scanqa"], predict=hook, prepare=None))
    args = ["eval", "scanqa", "-a", str(BENCH / "scanqa_val_sample.json"), "--model", str(tmp_path), "-o",
            str(tmp_path / "out"), "--json"]
    first = runner.invoke(app, args + ["--limit", "6"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["EM@1"] == 3 / 6 and len(seen) == 6
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert len(seen) == 20                          # only the 14 new ids were predicted
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["question_id"] for x in lines) == sorted(truth)


# --- geometry -----------------------------------------------------------------------------------------------------

def test_depth_pose_recon_from_prediction_dirs(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    make_scene(scenes, "scene0000_00", n=4)
    (tmp_path / "list.txt").write_text("scene0000_00\n")
    pred = tmp_path / "pred"
    d = pred / "scene0000_00" / "depth"
    d.mkdir(parents=True)
    for k, name in enumerate(["00000", "00010", "00020", "00030"]):
        gt_mm = 1000 + 500 * k
        Image.fromarray(np.full((6, 8), gt_mm * (1.0 if k < 2 else 1.5), np.uint16)).save(d / f"{name}.png")
    res = runner.invoke(app, ["eval", "depth", "-a", str(tmp_path / "list.txt"), "--scenes", str(scenes),
                              "--predictions", str(pred), "-o", str(tmp_path / "od"), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["delta1"] == pytest.approx(0.5) and m["AbsRel"] == pytest.approx(0.25) and m["n_images"] == 4
    med = runner.invoke(app, ["eval", "depth", "-a", str(tmp_path / "list.txt"), "--scenes", str(scenes),
                              "--predictions", str(pred), "-o", str(tmp_path / "od2"), "--json",
                              "--depth-align", "median"])
    assert json.loads(med.stdout)["AbsRel"] == pytest.approx(0.0, abs=1e-6)

    # poses: the GT itself (moving along x, rotating about z) -> perfect scores
    cams = {}
    for k, name in enumerate(["00000", "00010", "00020", "00030"]):
        c, s = np.cos(0.3 * k), np.sin(0.3 * k)
        pose = np.array([[c, -s, 0, 0.5 * k], [s, c, 0, 0.2 * k * k], [0, 0, 1, 0.1], [0, 0, 0, 1]])
        np.savetxt(scenes / "scene0000_00" / f"{name}.txt", pose)
        cams[name] = pose.tolist()
    (pred / "scene0000_00" / "cameras.json").write_text(json.dumps(cams))
    res = runner.invoke(app, ["eval", "pose", "-a", str(tmp_path / "list.txt"), "--scenes", str(scenes),
                              "--predictions", str(pred), "-o", str(tmp_path / "op"), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["RRA@15"] == 1.0 and m["RTA@15"] == 1.0 and m["n_pairs"] == 6

    import trimesh

    rng = np.random.default_rng(0)
    gt_pts = rng.uniform(0, 1, (400, 3))
    trimesh.PointCloud(gt_pts).export(scenes / "scene0000_00" / "scene0000_00_vh_clean_2.ply")
    trimesh.PointCloud(gt_pts + np.array([0.0, 0.0, 0.001])).export(pred / "scene0000_00.ply")
    res = runner.invoke(app, ["eval", "recon", "-a", str(tmp_path / "list.txt"), "--scenes", str(scenes),
                              "--predictions", str(pred), "-o", str(tmp_path / "or"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["F-score"] == pytest.approx(1.0)


def test_geometry_needs_scenes(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("scene0000_00\n")
    (tmp_path / "pred" / "scene0000_00").mkdir(parents=True)
    res = runner.invoke(app, ["eval", "depth", "-a", str(tmp_path / "list.txt"), "--predictions",
                              str(tmp_path / "pred"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "needs --scenes" in res.output
    with pytest.raises(DataError):
        TASKS["depth"].load([tmp_path / "missing.txt"], Problems())
