"""`vidllm --help`, `vidllm init`, and the commands that are not built yet."""

import re

from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.models.vidllm import VidLLM

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("distill", "train", "eval", "reconstruct", "ask", "caption", "ground", "init", "synth"):
        assert re.search(rf"\b{name}\b", result.output), name


def test_init_writes_a_loadable_model(tmp_path):
    result = runner.invoke(app, ["init", "--preset", "tiny", "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    model = VidLLM.from_pretrained(tmp_path / "m")
    assert model.config.name == "tiny"
    again = runner.invoke(app, ["init", "--preset", "tiny", "-o", str(tmp_path / "m")])
    assert again.exit_code != 0 and "--force" in again.output


def test_init_bad_inputs_are_one_line(tmp_path):
    for args, message in (
        (["--preset", "huge"], "unknown preset"),
        (["--vggt", str(tmp_path / "missing.pt")], "checkpoint not found"),
        (["--dinov2", str(tmp_path)], "no config.json"),
    ):
        result = runner.invoke(app, ["init", "-o", str(tmp_path / "out"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "model.safetensors").exists()
