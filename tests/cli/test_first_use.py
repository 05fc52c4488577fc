"""First-run papercuts of issue 14: help shows defaults, `--version`, model_type, and the untrained-model warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.config import VidLLMConfig

runner = CliRunner()
UNTRAINED = "is an untrained model"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _commands() -> list[tuple[list[str], object]]:
    """Every leaf command with its argv prefix (`prepare scannet` included)."""
    out, todo = [], [([], typer.main.get_command(app))]
    while todo:
        prefix, cmd = todo.pop()
        if hasattr(cmd, "commands"):  # a group (typer ships its own click classes)
            todo += [([*prefix, name], cmd.get_command(None, name)) for name in cmd.list_commands(None)]  # lazy
        else:
            out.append((prefix, cmd))
    return out


def test_every_written_default_hint_is_shown_in_help() -> None:
    hints = 0
    for argv, cmd in _commands():
        written = [p.help for p in cmd.params if getattr(p, "help", None) and "[default:" in p.help]
        if not written:
            continue
        shown = _flat(runner.invoke(app, [*argv, "--help"]).output)
        for help_text in written:
            hint = help_text[help_text.index("[default:"):]
            hint = hint[:hint.index("]") + 1]
            assert _flat(hint) in shown, (argv, hint)
            hints += 1
    assert hints >= 10


def test_ask_help_names_the_shipped_default_model() -> None:
    result = runner.invoke(app, ["ask", "--help"])
    assert result.exit_code == 0
    assert "[default: the shipped demo model]" in _flat(result.output)
    assert "[default: 32" in _flat(result.output)  # typer's own hints are kept too


def test_version_is_the_installed_package_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"vidllm {version('vidllm')}"


def test_config_has_model_type_and_old_configs_still_load(tmp_path: Path) -> None:
    data = VidLLMConfig.from_name("tiny").to_dict()
    assert data["model_type"] == "vidllm" and data["trained"] is True
    old = {k: v for k, v in data.items() if k not in ("model_type", "trained")}  # written before issue 14
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = VidLLMConfig.from_file(tmp_path)
    assert cfg.model_type == "vidllm" and cfg.trained
    (tmp_path / "config.json").write_text(json.dumps({**data, "model_type": "bert"}))
    with pytest.raises(Exception, match="another kind of model"):
        VidLLMConfig.from_file(tmp_path)


def test_shipped_demo_model_is_marked_trained_and_loads_without_warning(capsys: pytest.CaptureFixture) -> None:
    from vidllm_cli.scene import load_language_model, resolve_model

    data = json.loads((resolve_model(None) / "config.json").read_text())
    assert data["model_type"] == "vidllm" and data["trained"] is True
    assert load_language_model(None, "cpu").config.trained  # type: ignore[arg-type]
    assert UNTRAINED not in capsys.readouterr().err


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return folder


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("init") / "m"
    result = runner.invoke(app, ["init", "--preset", "tiny", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "untrained" in result.output
    return out


def test_init_marks_the_model_untrained(untrained: Path) -> None:
    data = json.loads((untrained / "config.json").read_text())
    assert data["model_type"] == "vidllm" and data["trained"] is False


@pytest.mark.parametrize("argv", [["ask", "{frames}", "How many chairs?"], ["caption", "{frames}"],
                                  ["ground", "{frames}", "the chair"]])
def test_untrained_model_warns_once_trained_does_not(argv: list[str], frames: Path, untrained: Path,
                                                     tmp_path: Path) -> None:
    args = [a.format(frames=frames) for a in argv] + ["--no-cache"]
    result = runner.invoke(app, [*args, "--model", str(untrained)])
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and UNTRAINED in warnings[0] and str(untrained) in warnings[0]
    trained = tmp_path / "trained"
    trained.mkdir()
    for p in untrained.iterdir():
        (trained / p.name).symlink_to(p)
    (trained / "config.json").unlink()
    data = json.loads((untrained / "config.json").read_text())
    (trained / "config.json").write_text(json.dumps({**data, "trained": True}))
    result = runner.invoke(app, [*args, "--model", str(trained)])
    assert result.exit_code == 0, result.output
    assert UNTRAINED not in result.stderr


def test_training_accepts_an_untrained_init_directory_of_the_same_model() -> None:
    from vidllm_core.errors import CheckpointError
    from vidllm_core.training.common import check_same_config

    tiny = VidLLMConfig.from_name("tiny")
    check_same_config(tiny.replace(trained=False).to_json(), tiny, "--init m")  # `trained` is not architecture
    with pytest.raises(CheckpointError, match="model preset 'demo'"):
        check_same_config(VidLLMConfig.from_name("demo").replace(trained=False).to_json(), tiny, "--init m")
