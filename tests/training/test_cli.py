"""`vidllm distill` / `vidllm train`: one clear line for bad input, nothing saved is lost; torchrun DDP on 2 CPU ranks."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.cli import one_error_line
from vidllm_cli.main import app

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: object):  # noqa: ANN201
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_train_then_resume(scenes_dir: Path, make_recipe, write_recipe, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = write_recipe(make_recipe("train", scenes_dir, steps=3, save_every=1))
    out = tmp_path / "run"
    r = invoke("train", "--config", cfg, "--out", out, "--max-steps", 2)
    assert r.exit_code == 0, r.stderr
    assert (out / "latest").read_text().strip() == "checkpoints/step-00000002"
    r = invoke("train", "--resume", out)
    assert r.exit_code == 0, r.stderr
    assert "resumed at step 2" in r.stderr and (out / "latest").read_text().strip() == "checkpoints/step-00000003"
    one_error_line(invoke("train", "--config", cfg, "--out", out), "already holds a training run")


def test_cli_bad_recipe_lines(scenes_dir: Path, make_recipe, write_recipe, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_recipe("train", scenes_dir)
    one_error_line(invoke("train", "--config", write_recipe({**d, "optimiser": {}}, "a.yaml")), "unknown key(s) optimiser")
    bad = {**d, "train": {**d["train"], "batch_size": 1.5}}
    one_error_line(invoke("train", "--config", write_recipe(bad, "b.yaml")), "train.batch_size", "integer")
    missing = {**d, "data": {**d["data"], "scenes": str(tmp_path / "nowhere")}}
    one_error_line(invoke("train", "--config", write_recipe(missing, "c.yaml"), "--out", tmp_path / "o"),
                   "data.scenes folder not found", "nowhere")
    assert not (tmp_path / "o").exists()
    one_error_line(invoke("train", "--config", tmp_path / "absent.yaml"), "recipe file not found")
    one_error_line(invoke("distill", "--config", write_recipe(d, "d.yaml")), "use `vidllm train`")


def test_cli_checkpoint_of_another_preset(scenes_dir: Path, make_recipe, write_recipe,  # noqa: ANN001
                                          tmp_path: Path) -> None:
    from vidllm_core.config import VidLLMConfig

    cfg = write_recipe(make_recipe("train", scenes_dir, steps=1))
    other = tmp_path / "demo_model"
    other.mkdir()
    (other / "config.json").write_text(VidLLMConfig.from_name("demo").to_json())
    (other / "model.safetensors").write_bytes(b"\0" * 16)
    one_error_line(invoke("train", "--config", cfg, "--init", other, "--out", tmp_path / "o1"),
                   "preset 'demo'", "'tiny'")
    out = tmp_path / "run"
    assert invoke("train", "--config", cfg, "--out", out).exit_code == 0
    ckpt = out / (out / "latest").read_text().strip()
    before = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "config.json").write_text(VidLLMConfig.from_name("demo").to_json())
    one_error_line(invoke("train", "--config", cfg, "--resume", out), "--resume checkpoint", "'demo'")
    assert (ckpt / "model.safetensors").read_bytes() == before


def test_cli_nan_loss_stops_and_keeps_last_checkpoint(scenes_dir: Path, make_recipe, write_recipe,  # noqa: ANN001
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from vidllm_core.training import stage2

    real = stage2.JointModule.forward
    calls = {"n": 0}

    def nan_on_third(self, batch):  # noqa: ANN001, ANN202
        total, parts = real(self, batch)
        calls["n"] += 1
        return (total * torch.nan if calls["n"] == 3 else total), parts

    monkeypatch.setattr(stage2.JointModule, "forward", nan_on_third)
    cfg = write_recipe(make_recipe("train", scenes_dir, steps=5, save_every=2))
    out = tmp_path / "run"
    line = one_error_line(invoke("train", "--config", cfg, "--out", out), "nan at step 3", "step-00000002")
    assert "--resume" in line
    assert (out / "latest").read_text().strip() == "checkpoints/step-00000002"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    monkeypatch.setattr(stage2.JointModule, "forward", real)
    assert invoke("train", "--resume", out).exit_code == 0


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_cli_full_or_read_only_disk_keeps_previous_checkpoint(err: int, scenes_dir: Path, make_recipe,  # noqa: ANN001
                                                              write_recipe, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    cfg = write_recipe(make_recipe("train", scenes_dir, steps=4, save_every=2))
    out = tmp_path / "run"
    assert invoke("train", "--config", cfg, "--out", out, "--max-steps", 2).exit_code == 0
    before = {p.name: p.read_bytes() for p in (out / "checkpoints" / "step-00000002").iterdir()}
    real = safetensors.torch.save_file

    def failing(tensors, filename, metadata=None):  # noqa: ANN001, ANN202
        real(tensors, filename, metadata)  # a partial file exists when the error strikes
        raise OSError(err, os.strerror(err), filename)

    monkeypatch.setattr(safetensors.torch, "save_file", failing)
    r = invoke("train", "--resume", out)
    line = one_error_line(r)
    assert ("no space left" in line.lower()) if err == errno.ENOSPC else ("read-only" in line.lower())
    assert "step-00000002 is kept" in line
    assert (out / "latest").read_text().strip() == "checkpoints/step-00000002"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000002"]
    assert {p.name: p.read_bytes() for p in (out / "checkpoints" / "step-00000002").iterdir()} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_cli_read_only_out_dir(scenes_dir: Path, make_recipe, write_recipe, tmp_path: Path) -> None:  # noqa: ANN001
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        one_error_line(invoke("train", "--config", write_recipe(make_recipe("train", scenes_dir)), "--out",
                              ro / "run"), "not writable")
    finally:
        ro.chmod(0o700)


def test_torchrun_ddp_two_cpu_ranks_identical_weights(scenes_dir: Path, make_recipe, write_recipe,  # noqa: ANN001
                                                      tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    cfg = write_recipe(make_recipe("train", scenes_dir, steps=3, save_every=3))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "vidllm_cli", "train",
                           "--config", str(cfg), "--out", str(tmp_path / "run"), "--print-hash"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the two ranks share one pipe, so their lines may run together: match anywhere, not per line
    hashes = dict(re.findall(r"rank (\d+) sha256 ([0-9a-f]{64})", proc.stdout))
    assert sorted(hashes) == ["0", "1"], proc.stdout
    assert hashes["0"] == hashes["1"]
    metrics = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert (tmp_path / "run" / "latest").read_text().strip() == "checkpoints/step-00000003"
