"""`vidllm ask` / `ground` on a ScanNet `posed_images/<scene>` folder (issue 13 item 4): the colour frames are read
(never the 16-bit depth PNGs), and `ground` reports the source's GT placement and depth error."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.io.test_frames import make_scannet_scene
from vidllm_cli.main import app
from vidllm_core.models.vidllm import VidLLM

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_ask_and_ground_read_the_colour_frames_of_a_scannet_scene(tiny_model_dir, tmp_path,  # noqa: ANN001
                                                                   monkeypatch) -> None:  # noqa: ANN001
    root, _ = make_scannet_scene(tmp_path / "posed_images" / "scene0003_00", num=8)
    seen = []
    real = VidLLM.encode_scene

    def spy(self, images):  # noqa: ANN001, ANN202
        seen.append(images)
        return real(self, images)

    monkeypatch.setattr(VidLLM, "encode_scene", spy)
    res = CliRunner().invoke(app, ["ask", str(root), "How many chairs?", "--model", str(tiny_model_dir),
                                   "--no-cache", "--json", "--max-new-tokens", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames"] == [0, 2, 5, 7]         # tiny preset: 4 of the 8 colour frames
    assert float(seen[0].mean()) < 0.6                               # grey levels 0..210/255, not white
    res = CliRunner().invoke(app, ["ground", str(root), "the chair", "--model", str(tiny_model_dir),
                                   "--no-cache", "--json"])
    assert res.exit_code == 0, res.output
    gt = json.loads(res.stdout)["ground_truth"]
    assert gt["anchor_frame"] == "00002" and gt["depth"]["n_images"] == 4   # frame 0's pose is -inf
