"""Stage 2 with the language branch (Eq. 8): QA and grounding samples from synthrooms reach the VL loss terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s2lang") / "synth"
    res = CliRunner().invoke(app, ["synth", str(out), "--scenes", "2", "--seed", "0", "--frames", "4",
                                   "--size", "56x42", "--no-video", "--split-ratios", "1,0,0"])
    assert res.exit_code == 0, res.output
    return out


def _recipe(synth: Path, model_dir: Path, save_every: int) -> dict:
    ann = synth / "annotations"
    return {
        "stage": "train", "init": str(model_dir), "model": {"preset": "tiny"},
        "data": {"scenes": str(synth / "posed_images"), "frames": 4, "image_size": 42,
                 "annotations": {"scanqa": str(ann / "ScanQA_v1.0_train.json"),
                                 "scanrefer": str(ann / "ScanRefer_filtered_train.json"),
                                 "gt_boxes": str(ann / "gt_boxes.json")}},
        "optim": {"lr": 1e-3, "warmup_ratio": 0.25},
        "train": {"steps": 3, "batch_size": 1, "save_every": save_every, "seed": 0},
        "stage2": {"tokenizer": str(model_dir / "tokenizer")},
    }


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("s2init") / "init"
    res = CliRunner().invoke(app, ["init", "--preset", "tiny", "-o", str(model_dir)])
    assert res.exit_code == 0, res.output
    return model_dir


def test_stage2_trains_the_language_branch(synth: Path, tiny_dir: Path, tmp_path: Path, write_recipe) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    recipe = write_recipe(_recipe(synth, tiny_dir, save_every=100))
    res = CliRunner().invoke(app, ["train", "--config", str(recipe), "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*(rec.keys() for rec in logged))
    assert any("answer_ce" in k for k in keys), keys
    assert all(rec.get("loss") is None or rec["loss"] == rec["loss"] for rec in logged)  # no NaN
    assert (out / "tokenizer").is_dir() and (out / "model.safetensors").is_file()


def test_stage2_with_the_language_branch_resumes(synth: Path, tiny_dir: Path, tmp_path: Path,  # noqa: ANN001
                                                 write_recipe) -> None:
    """Checkpoints store the LLM's tied embedding / head once; resuming fills the head back in."""
    out = tmp_path / "run"
    recipe = write_recipe(_recipe(synth, tiny_dir, save_every=1))
    res = CliRunner().invoke(app, ["train", "--config", str(recipe), "--out", str(out), "--max-steps", "2"])
    assert res.exit_code == 0, res.stderr
    res = CliRunner().invoke(app, ["train", "--config", str(recipe), "--resume", str(out)])
    assert res.exit_code == 0, res.stderr
    assert "resumed at step 2" in res.stderr and (out / "latest").read_text().strip() == "checkpoints/step-00000003"
