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


def test_vision_only_loading_gives_the_same_reconstruction() -> None:
    """`from_pretrained(language=False)` (what `reconstruct` and geometry evaluation use) skips the LLM only."""
    import torch

    from vidllm_core.models.vidllm import VidLLM

    vision = VidLLM.from_pretrained(default_model_dir(), language=False)
    full = VidLLM.from_pretrained(default_model_dir())
    assert not vision.has_language and full.has_language
    images = torch.rand(2, 3, 84, 112, generator=torch.Generator().manual_seed(0))
    a, b = vision.reconstruct(images), full.reconstruct(images)
    assert torch.equal(a.depth, b.depth) and torch.equal(a.extrinsic, b.extrinsic)
