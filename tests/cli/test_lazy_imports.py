"""Issue 16 cold start: `vidllm` imports a subcommand's module only when that subcommand runs; --threads policy."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from vidllm_cli.main import COMMANDS, app


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_cli_imports_no_subcommand_and_no_torch() -> None:
    loaded = _modules_after("import vidllm_cli.main")
    assert not {f"vidllm_cli.{m}" for m, _ in COMMANDS.values()} & loaded
    assert "torch" not in loaded


def test_building_the_ask_command_imports_no_other_command() -> None:
    loaded = _modules_after("from vidllm_cli.main import app\nfrom typer.main import get_command\n"
                            "get_command(app).get_command(None, 'ask')")
    assert "vidllm_cli.ask" in loaded
    assert not {"vidllm_cli.train", "vidllm_cli.distill", "vidllm_cli.eval", "vidllm_cli.synth"} & loaded


def test_help_lists_every_command_without_importing_them() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_threads_option_sets_the_thread_policy(monkeypatch) -> None:  # noqa: ANN001
    import os

    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, ["--threads", "1", "synth", "--help"])
        assert result.exit_code == 0
        assert os.environ["OMP_NUM_THREADS"] == "1" and torch.get_num_threads() == 1
        bad = CliRunner().invoke(app, ["--threads", "0", "synth", "--help"])
        assert bad.exit_code == 2
        for value in ("abc", "-2", "0"):  # a bad $VIDLLM_THREADS is a usage error naming it, not a traceback
            monkeypatch.setenv("VIDLLM_THREADS", value)
            env_bad = CliRunner().invoke(app, ["synth", "/nonexistent-dir", "--scenes", "1"])
            assert env_bad.exit_code == 2 and "VIDLLM_THREADS" in env_bad.output, env_bad.output
            assert env_bad.exception is None or isinstance(env_bad.exception, SystemExit)
    finally:
        torch.set_num_threads(before)
