"""Bad inputs are one line (issue 14): non-UTF-8 question / situation / description / stdin line / video file name,
a decompression-bomb image, and a pickled `pytorch_model.bin` (not plain weights) given as LLM or CLIP teacher."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.cli import one_error_line
from vidllm_cli.main import app

runner = CliRunner()
BAD = "chairs \udcff\udcfe?"  # what Python makes of the bytes b"\xff\xfe" in a non-UTF-8 argument


def run(*args: object, **kwargs):  # noqa: ANN003, ANN201
    return runner.invoke(app, [str(a) for a in args], **kwargs)


# --- non-UTF-8 text --------------------------------------------------------------------------------------------------

def test_non_utf8_question_situation_description(tiny_model_dir: Path, tiny_video: Path) -> None:
    common = ["--model", tiny_model_dir, "--no-cache"]
    one_error_line(run("ask", tiny_video, BAD, *common), "question is not valid UTF-8")
    one_error_line(run("ask", tiny_video, "Where?", "--situation", BAD, *common), "situation is not valid UTF-8")
    one_error_line(run("ground", tiny_video, BAD, *common), "description is not valid UTF-8")


def test_ask_interactive_bad_bytes_line_is_one_error_and_the_session_goes_on(tiny_model_dir: Path,
                                                                            tiny_video: Path) -> None:
    session = run("ask", tiny_video, "-i", "--model", tiny_model_dir, "--no-cache", "--json", "--max-new-tokens", 2,
                  input=b"How many chairs?\n\xff\xfe bad bytes\nIs there a bed?\n")
    assert session.exit_code == 0, session.output
    errors = [ln for ln in session.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "not valid UTF-8" in errors[0] and "Traceback" not in session.output
    answered = [json.loads(ln)["question"] for ln in session.stdout.splitlines() if ln.strip()]
    assert answered == ["How many chairs?", "Is there a bed?"]


def test_non_utf8_video_file_name(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path) -> None:
    """A file name with undecodable bytes: the answer comes, and the scene cache (whose metadata holds the name)
    is written."""
    video = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/r\xffom.mp4"))
    shutil.copy(tiny_video, video)
    res = run("ask", video, "How many chairs?", "--model", tiny_model_dir, "--cache-dir", tmp_path / "cache",
              "--json", "--max-new-tokens", 2)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["answers"][0]["question"] == "How many chairs?"
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 1


# --- images and checkpoints -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [1000, 2000], ids=["DecompressionBombError", "DecompressionBombWarning"])
def test_decompression_bomb_image_is_one_line(limit: int, tiny_model_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """PIL refuses images over 2 x MAX_IMAGE_PIXELS (error) and warns over MAX_IMAGE_PIXELS; a lowered limit makes
    3,072-pixel frames play the bomb."""
    import numpy as np
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(frames / f"{i:03d}.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    one_error_line(run("reconstruct", frames, "-o", tmp_path / "o.ply", "--model", tiny_model_dir),
                   "000.png", "decompression bomb")
    assert not (tmp_path / "o.ply").exists()


class _Payload:
    """A pickle that would create a folder when unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (str(self.marker),))


def _pickle_into(folder: Path, marker: Path) -> None:
    import torch

    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save({"weight": _Payload(marker)}, folder / "pytorch_model.bin")


def test_pickled_llm_is_one_line(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig

    from vidllm_core.language.tokenizer import build_tokenizer

    llm = tmp_path / "llm"
    tok = build_tokenizer(["How many chairs are in the room? two chairs."] * 4, vocab_size=300)
    AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id)).save_pretrained(llm)
    tok.save_pretrained(str(llm))
    marker = tmp_path / "payload-ran"
    _pickle_into(llm, marker)
    one_error_line(run("init", "--preset", "tiny", "--llm", llm, "-o", tmp_path / "m"), "refused the LLM",
                   "convert the checkpoint to safetensors")
    assert not marker.exists() and not (tmp_path / "m" / "model.safetensors").exists()


def test_pickled_clip_teacher_is_one_line(scenes_dir: Path, teacher_dirs: dict, make_recipe,  # noqa: ANN001
                                          write_recipe, tmp_path: Path) -> None:  # noqa: ANN001
    clip = tmp_path / "clip"
    shutil.copytree(teacher_dirs["clip"], clip)
    marker = tmp_path / "payload-ran"
    _pickle_into(clip, marker)
    cfg = write_recipe(make_recipe("distill", scenes_dir, {"vggt": teacher_dirs["vggt"], "clip": clip}))
    one_error_line(run("distill", "--config", cfg, "--out", tmp_path / "run"), "refused the CLIP teacher")
    assert not marker.exists() and not (tmp_path / "run" / "latest").exists()
