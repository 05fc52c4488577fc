"""Running `vidllm` in-process for CLI tests, and the one-line error check of a refused input."""

from __future__ import annotations

from typer.testing import CliRunner

from vidllm_cli.main import app

runner = CliRunner()


def invoke(*args: object):  # noqa: ANN201 - a click Result
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, text: str) -> None:  # noqa: ANN001 - a click Result
    """Exit code 2, exactly one `error:` line containing `text`, no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], result.output
    assert "Traceback" not in result.output
