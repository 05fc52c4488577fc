"""Outputs of `reconstruct` and `ask` (issue 14): an output path equal to the input is refused, unwritable outputs
are found before the work and named as the user wrote them, a full disk is one line that keeps earlier outputs, and
a full scene cache is a warning (the answer still comes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.cli import one_error_line
from tests.reliability.conftest import disk_full_in, snapshot
from vidllm_cli.main import app

runner = CliRunner()


def run(*args: object):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def test_cameras_equal_to_the_input_is_refused(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path) -> None:
    video = tmp_path / "room.json"  # a --cameras path that is the input video (any suffix is accepted there)
    video.write_bytes(tiny_video.read_bytes())
    before = video.read_bytes()
    one_error_line(run("reconstruct", video, "-o", tmp_path / "o.ply", "--cameras", video, "--model", tiny_model_dir),
                   "--cameras", "is the input VIDEO")
    assert video.read_bytes() == before and not (tmp_path / "o.ply").exists()


def test_unwritable_output_is_found_before_the_work(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from vidllm_core.models.vidllm import VidLLM

    def no_model(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(VidLLM, "from_pretrained", no_model)
    line = one_error_line(run("reconstruct", tiny_video, "-o", "/proc/vidllm/o.ply", "--model", tiny_model_dir),
                          "/proc/vidllm/o.ply")
    assert ".o.ply." not in line
    folder = tmp_path / "folder.ply"
    folder.mkdir()
    one_error_line(run("reconstruct", tiny_video, "-o", folder, "--model", tiny_model_dir), str(folder), "a folder")


def test_reconstruct_full_disk_keeps_earlier_outputs(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = ["reconstruct", tiny_video, "-o", out / "cloud.ply", "--cameras", out / "cameras.json", "--model",
            tiny_model_dir]
    assert run(*args).exit_code == 0
    before = snapshot(out)
    disk_full_in(monkeypatch, out)
    line = one_error_line(run(*args, "--max-points", 100), "no space left on device")
    assert str(out) in line
    assert snapshot(out) == before  # both earlier outputs byte for byte, no temporary file left


def test_ask_with_a_full_scene_cache_warns_and_answers(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors import SafetensorError

    from vidllm_core.errors import VidLLMWarning
    from vidllm_core.language import cache

    def full(tensors, filename, metadata=None):  # noqa: ANN001, ANN202 - how safetensors reports ENOSPC
        Path(filename).write_bytes(b"\0" * 16)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(cache, "save_file", full)
    with pytest.warns(VidLLMWarning, match="scene cache was not written.*No space left on device"):
        res = run("ask", tiny_video, "How many chairs?", "--model", tiny_model_dir, "--cache-dir", tmp_path / "c",
                  "--json", "--max-new-tokens", 2)
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert json.loads(res.stdout)["answers"][0]["question"] == "How many chairs?"
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]  # no partial entry left behind


def test_warning_is_one_line_on_the_cli() -> None:
    """Outside pytest's warning capture, a VidLLMWarning prints as one `warning:` line (vidllm_cli.common)."""
    import subprocess
    import sys

    code = ("import warnings, vidllm_cli.common\nfrom vidllm_core.errors import VidLLMWarning\n"
            "warnings.warn('the scene cache was not written', VidLLMWarning)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "warning: the scene cache was not written\n", proc.stderr


def test_ground_and_init_outputs_equal_to_inputs_are_refused(tiny_model_dir: Path, tiny_video: Path,
                                                              tmp_path: Path) -> None:
    proposals = tmp_path / "proposals.json"
    proposals.write_text("[[0, 0, 0, 1, 1, 1]]")
    one_error_line(run("ground", tiny_video, "the chair", "--proposals", proposals, "-o", proposals, "--model",
                       tiny_model_dir), "--output", "is the input --proposals")
    assert proposals.read_text() == "[[0, 0, 0, 1, 1, 1]]"
    one_error_line(run("ground", tiny_video, "the chair", "--png", "/proc/vidllm/o.png", "--model", tiny_model_dir),
                   "/proc/vidllm/o.png")
    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "config.json").write_text("{}")
    one_error_line(run("init", "--preset", "tiny", "--llm", llm, "-o", llm, "--force"), "is the input --llm")
    assert (llm / "config.json").read_text() == "{}"
