"""Running `vidllm` in-process for CLI tests, and the one-line error check of a refused input."""

from __future__ import annotations

from typer.testing import CliRunner

from vidllm_cli.main import app

runner = CliRunner()


def invoke(*args: object):  # noqa: ANN201 - a click Result
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, *needles: str) -> str:  # noqa: ANN001 - a click Result
    """Exit code 2, exactly one `error: ` line on stderr containing every needle, no traceback; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
