"""`vidllm synth` end to end: determinism, layout files, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.data.synth import read_scene

runner = CliRunner()
ARGS = ["--scenes", "2", "--frames", "6", "--size", "96x72"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_same_seed_same_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        r = runner.invoke(app, ["synth", str(tmp_path / name), "--seed", "7", *ARGS])
        assert r.exit_code == 0, r.output
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 50
    for k in a:
        if k.endswith(".mp4"):
            va, vb = _video_frames(tmp_path / "a" / k), _video_frames(tmp_path / "b" / k)
            assert len(va) == 6 and all(np.array_equal(x, y) for x, y in zip(va, vb))
        else:
            assert a[k] == b[k], k
    r = runner.invoke(app, ["synth", str(tmp_path / "c"), "--seed", "8", *ARGS])
    assert r.exit_code == 0
    assert (tmp_path / "c/scenes/synth0000_00/scene.json").read_bytes() != a["scenes/synth0000_00/scene.json"]


LAYOUT = {"room": {"size": [5.0, 4.0, 2.7]},
          "features": [{"category": "door", "wall": "south", "offset": 1.0, "colour": "brown"}],
          "objects": [{"category": "bed", "colour": "blue", "position": [2.5, 2.96], "yaw": 180, "size": [1.6, 2.0, 1.0]},
                      {"category": "desk", "colour": "white", "position": [4.55, 1.5], "yaw": 90},
                      {"category": "monitor", "colour": "black", "position": [4.6, 1.5], "yaw": 90, "on": 1},
                      {"category": "chair", "colour": "red", "position": [3.8, 1.5], "yaw": -90},
                      {"category": "plant", "colour": "green", "position": [0.3, 3.7]}]}


def test_layout_file_renders_that_scene(tmp_path: Path) -> None:
    lay = tmp_path / "room.json"
    lay.write_text(json.dumps(LAYOUT))
    r = runner.invoke(app, ["synth", str(tmp_path / "o"), "--layout", str(lay), "--scenes", "1", "--frames", "24"])
    assert r.exit_code == 0, r.output
    sd = read_scene(tmp_path / "o/scenes/synth0000_00")
    cats = [(o["category"], o["colour"]) for o in sd.objects]
    assert cats == [("door", "brown"), ("bed", "blue"), ("desk", "white"), ("monitor", "black"), ("chair", "red"),
                    ("plant", "green")]
    assert sd.meta["room"]["size"] == [5.0, 4.0, 2.7]
    mon = sd.objects[3]
    assert mon["support"] == 2 and abs(mon["position"][2] - sd.objects[2]["size"][2]) < 1e-9
    assert np.allclose(sd.objects[1]["position"][:2], [2.5, 2.96])


def _bad(tmp_path: Path, content: str, *extra: str) -> str:
    lay = tmp_path / "bad.json"
    lay.write_text(content)
    out = tmp_path / "o"
    r = runner.invoke(app, ["synth", str(out), "--layout", str(lay), *extra])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert not (out / "scenes").exists()
    return lines[0]


def _layout(**change: object) -> str:
    lay = json.loads(json.dumps(LAYOUT))
    for k, v in change.items():
        idx, field = k.split("__")
        lay["objects"][int(idx[1:])][field] = v
    return json.dumps(lay)


@pytest.mark.parametrize("change, words", [
    ({"o3__category": "spaceship"}, ["object 3", "unknown category", "spaceship"]),
    ({"o4__position": [-0.5, 2.0]}, ["object 4", "plant", "outside the room"]),
    ({"o3__position": [4.5, 1.5]}, ["object 3", "chair", "overlaps", "object 1 (desk)"]),
    ({"o0__colour": "teal"}, ["object 0", "unknown colour", "teal"]),
    ({"o2__on": 7}, ["object 2", "'on'"]),
])
def test_bad_layout_one_line(tmp_path: Path, change: dict, words: list[str]) -> None:
    line = _bad(tmp_path, _layout(**change))
    for w in words:
        assert w in line, line


def test_malformed_json_layout(tmp_path: Path) -> None:
    line = _bad(tmp_path, '{"room": {"size": [5, 4, 2.7]}, "objects": [')
    assert "not valid JSON" in line and "line 1" in line


@pytest.mark.parametrize("args, words", [
    (["--size", "224by168"], "--size"), (["--size", "225x168"], "even"), (["--split-ratios", "0.5,0.5"], "--split-ratios"),
    (["--split-ratios", "0.9,0.3,0.1"], "summing to 1"), (["--scenes", "0"], "--scenes"),
    (["--layout", "/nonexistent/room.json"], "layout file not found"),
])
def test_bad_arguments_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    r = runner.invoke(app, ["synth", str(tmp_path / "o"), *args])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.output


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["synth", str(blocker / "out"), "--scenes", "1", "--frames", "4"])
    assert r.exit_code == 2
    assert r.output.strip().startswith("error: cannot write to output directory") and len(r.output.strip().splitlines()) == 1
