"""`vidllm ask --max-memory-gb`: the scene encoding of a long video in overlapping chunks (issue 13 item 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app

ROOM = Path(__file__).resolve().parents[2] / "examples" / "room.mp4"
runner = CliRunner()


@pytest.fixture
def fixed_rss(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidllm_core.pipelines import long_video

    monkeypatch.setattr(long_video, "current_rss_bytes", lambda: 300 * 2 ** 20)  # independent of the test runner


def test_ask_encodes_a_long_video_in_chunks_within_the_budget(fixed_rss: None) -> None:
    question = "how many beds are in the room?"
    one = runner.invoke(app, ["ask", str(ROOM), question, "--frames", "20", "--no-cache"])
    chunked = runner.invoke(app, ["ask", str(ROOM), question, "--frames", "20", "--max-memory-gb", "0.40"])
    assert one.exit_code == 0 and chunked.exit_code == 0, (one.output, chunked.output)
    count = int(re.search(r"(\d+) chunk\(s\) within 0.4 GB", chunked.output)[1])
    assert count > 1
    answer = chunked.stdout.strip().splitlines()[-1]
    assert answer and not answer.startswith(("error", "warning"))


def test_a_budget_of_zero_is_one_line(fixed_rss: None) -> None:
    result = runner.invoke(app, ["ask", str(ROOM), "how many beds are in the room?", "--max-memory-gb", "0"])
    assert result.exit_code == 2
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
