"""The shipped demo model (vidllm_core/assets/demo/) answers the first counting question of examples/questions.json
about examples/room.mp4 correctly, through the CLI default (no --model). A broken checkpoint, tokenizer or a change
in preprocessing fails here."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.assets import default_model_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def first_counting_question(video: str) -> dict:
    questions = json.loads((EXAMPLES / "questions.json").read_text(encoding="utf-8"))["questions"]
    return next(q for q in questions if q["video"] == video and q["question"].startswith("how many"))


def test_shipped_model_counts_in_room_mp4(tmp_path: Path) -> None:
    model = default_model_dir()
    assert model is not None, "no shipped demo model in vidllm_core/assets/demo/"
    assert sum(f.stat().st_size for f in model.rglob("*") if f.is_file()) <= 40 * 2**20
    q = first_counting_question("room.mp4")
    result = CliRunner().invoke(app, ["ask", str(EXAMPLES / "room.mp4"), q["question"], "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)["answers"][0]["answer"].strip().lower().rstrip(".")
    assert answer in q["answers"], f"{q['question']!r}: model said {answer!r}, truth {q['answers']}"
