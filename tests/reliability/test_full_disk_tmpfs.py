"""A real full disk (issue 14, "Must show"): `eval`, `reconstruct` and `ask` on a small tmpfs that a first run
filled; the second run is one line (or, for the optional scene cache, a warning and the answer), and every earlier
output is intact. `train` on a real full tmpfs: tests/reliability/test_train_reliability.py. Root only (mount)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from typer.testing import CliRunner

from tests.fixtures import BENCH
from tests.helpers.cli import one_error_line
from tests.reliability.conftest import fill, mounted_tmpfs, snapshot
from vidllm_cli.main import app

runner = CliRunner()
SCANQA = BENCH / "scanqa_val_sample.json"


def run(*args: object):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def test_eval_on_a_full_disk(tmp_path: Path) -> None:
    rows = json.loads(SCANQA.read_text())
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"question_id": r["question_id"], "answer": "two"}) + "\n" for r in rows))
    with mounted_tmpfs(tmp_path / "disk", "size=256k") as disk:
        out = disk / "o"
        assert run("eval", "scanqa", "-a", SCANQA, "--predictions", preds, "-o", out).exit_code == 0
        before = snapshot(out)
        fill(disk)
        one_error_line(run("eval", "scanqa", "-a", SCANQA, "--predictions", preds, "-o", out),
                       "no space left on device", str(out))
        assert snapshot(out) == before


def test_reconstruct_on_a_full_disk(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "size=2m") as disk:
        args = ["reconstruct", tiny_video, "-o", disk / "cloud.ply", "--cameras", disk / "cameras.json", "--model",
                tiny_model_dir]
        assert run(*args).exit_code == 0
        before = {p: p.read_bytes() for p in (disk / "cloud.ply", disk / "cameras.json")}
        fill(disk)
        one_error_line(run(*args, "--max-points", 500), "no space left on device", str(disk))
        assert {p: p.read_bytes() for p in before} == before
        assert sorted(p.name for p in disk.iterdir()) == ["cameras.json", "cloud.ply", "filler"]


def test_ask_with_its_cache_on_a_full_disk(tiny_model_dir: Path, tiny_video: Path, tmp_path: Path) -> None:
    from vidllm_core.errors import VidLLMWarning

    with mounted_tmpfs(tmp_path / "disk", "size=64k") as disk:
        fill(disk)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = run("ask", tiny_video, "How many chairs?", "--model", tiny_model_dir, "--cache-dir", disk / "cache",
                      "--json", "--max-new-tokens", 2)
        assert res.exit_code == 0 and "Traceback" not in res.output, res.output
        assert json.loads(res.stdout)["answers"][0]["question"] == "How many chairs?"
        assert any(issubclass(w.category, VidLLMWarning) and "No space left" in str(w.message) for w in caught)
        assert not [p for p in disk.rglob("*.safetensors")]
