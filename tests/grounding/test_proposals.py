"""Proposal files (issue 12): the formats read, the converter (library + `vidllm prepare proposals`), bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.data.proposals import ProposalLog, convert_proposals, read_proposals
from vidllm_core.errors import DataError

BOXES = np.array([[1.0, 2.0, 0.5, 0.4, 0.6, 1.0], [3.0, 1.0, 0.4, 1.2, 0.5, 0.8]])


def test_reads_every_per_scene_format(tmp_path: Path) -> None:
    np.save(tmp_path / "scene0000_00.npy", BOXES)
    np.save(tmp_path / "scene0001_00.npy", np.c_[BOXES, [0.9, 0.3]])
    (tmp_path / "scene0002_00.json").write_text(json.dumps(BOXES.tolist()))
    (tmp_path / "scene0003_00.json").write_text(json.dumps([{"box": b, "score": 0.5} for b in BOXES.tolist()]))
    (tmp_path / "scene0004_00.json").write_text(json.dumps({"scene_id": "scene0004_00", "boxes": BOXES.tolist(),
                                                            "scores": [0.1, 0.2]}))
    for i in range(5):
        p = read_proposals(tmp_path, f"scene000{i}_00")
        np.testing.assert_allclose(p.boxes, BOXES)
        assert p.dropped == 0
    assert read_proposals(tmp_path, "scene0001_00").scores.tolist() == [0.9, 0.3]
    assert read_proposals(tmp_path, "scene0004_00").scores.tolist() == [0.1, 0.2]


def test_bad_input_is_one_line_or_counted(tmp_path: Path) -> None:
    (tmp_path / "scene0000_00.json").write_text(json.dumps({"scene_id": "scene0009_00", "boxes": BOXES.tolist()}))
    with pytest.raises(DataError, match="is for scene 'scene0009_00', not 'scene0000_00'"):
        read_proposals(tmp_path, "scene0000_00")
    with pytest.raises(DataError, match="no proposals for scene scene0005_00"):
        read_proposals(tmp_path, "scene0005_00")
    (tmp_path / "scene0001_00.json").write_text(json.dumps([[0, 0, 0, 1, 1]]))
    with pytest.raises(DataError, match=r"\(K, 6\)"):
        read_proposals(tmp_path, "scene0001_00")
    bad = np.concatenate([BOXES, [[np.nan, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 1, -2, 1],
                                  [0, np.inf, 0, 1, 1, 1]]])
    np.save(tmp_path / "scene0002_00.npy", bad)
    (tmp_path / "scene0003_00.json").write_text("[]")
    np.save(tmp_path / "scene0004_00.npy", bad[2:])  # nothing valid
    notes: list[str] = []
    log = ProposalLog(notes)
    with pytest.warns(UserWarning):
        for scene in ("scene0002_00", "scene0003_00", "scene0004_00", "scene0002_00"):
            p = read_proposals(tmp_path, scene)
            log.record(p)
            assert np.isfinite(p.boxes).all() and (p.boxes[:, 3:] > 0).all()
    assert len(read_proposals(tmp_path, "scene0002_00").boxes) == 2
    assert notes == ["proposals: dropped 8 box(es) with NaN / inf coordinates or a size <= 0 in 2 scene(s)",
                     "proposals: no valid proposal in 2 scene(s) (their queries are answered with no box, scored "
                     "as misses)"]


def test_convert_chat_scene_dump_and_minmax(tmp_path: Path) -> None:
    dump = {"scene0000_00": {"locs": torch.tensor(BOXES, dtype=torch.float32), "objects": ["chair", "table"]},
            "scene0001_00": {"locs": torch.tensor(np.r_[BOXES[:1], [[0, 0, 0, 0, 1, 1]]]), "objects": ["a", "b"]}}
    torch.save(dump, tmp_path / "scannet_mask3d_val_attributes.pt")
    report = convert_proposals(tmp_path / "scannet_mask3d_val_attributes.pt", tmp_path / "out")
    assert report == {"scene0000_00": {"kept": 2, "dropped": 0}, "scene0001_00": {"kept": 1, "dropped": 1}}
    np.testing.assert_allclose(read_proposals(tmp_path / "out", "scene0000_00").boxes, BOXES, atol=1e-6)
    assert json.loads((tmp_path / "out" / "scene0000_00.json").read_text())["scene_id"] == "scene0000_00"
    minmax = np.c_[BOXES[:, :3] - BOXES[:, 3:] / 2, BOXES[:, :3] + BOXES[:, 3:] / 2]
    (tmp_path / "mm.json").write_text(json.dumps({"scene0002_00": minmax.tolist()}))
    convert_proposals(tmp_path / "mm.json", tmp_path / "out", box_format="minmax")
    np.testing.assert_allclose(read_proposals(tmp_path / "out", "scene0002_00").boxes, BOXES, atol=1e-6)
    with pytest.raises(DataError, match="no proposals for 1 scene"):
        convert_proposals(tmp_path / "mm.json", tmp_path / "o2", scenes={"scene0002_00", "scene0003_00"})


def test_prepare_proposals_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "dump.json").write_text(json.dumps({"scene0000_00": {"locs": BOXES.tolist()}}))
    res = runner.invoke(app, ["prepare", "proposals", str(tmp_path / "dump.json"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "1 scene" in res.output
    np.testing.assert_allclose(read_proposals(tmp_path / "out", "scene0000_00").boxes, BOXES)
    (tmp_path / "bad.json").write_text(json.dumps({"scene0000_00": {"objects": []}}))
    res = runner.invoke(app, ["prepare", "proposals", str(tmp_path / "bad.json"), "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "error:" in res.output, res.output
