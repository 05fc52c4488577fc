"""`vidllm train` / `distill` (issue 14): one process per run folder, stale save temporaries removed, bad `--out`
and non-finite recipe numbers refused before work, and a full disk at every checkpoint writer is one line that keeps
the last good checkpoint."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.cli import one_error_line
from tests.reliability.conftest import mounted_tmpfs, snapshot
from vidllm_cli.main import app

runner = CliRunner()
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def train(*args: object):  # noqa: ANN201
    return runner.invoke(app, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def base_run(scenes_dir: Path, make_recipe, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    """A 4-step run stopped after its step-2 checkpoint (copied by each test)."""
    import yaml

    root = tmp_path_factory.mktemp("base")
    cfg = root / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(make_recipe("train", scenes_dir, steps=4, save_every=2)))
    res = train("--config", cfg, "--out", root / "run", "--max-steps", 2)
    assert res.exit_code == 0, res.stderr
    return root / "run"


def copy_run(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(base, out)
    return out


# --- one writer per run folder ---------------------------------------------------------------------------------------

def test_second_train_on_one_out_is_refused(scenes_dir: Path, make_recipe, write_recipe,  # noqa: ANN001
                                            tmp_path: Path) -> None:
    """Another process (a real second process) holds the folder: the new run is one line and writes nothing."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom vidllm_core.io import run_lock\n"
                               f"with run_lock({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cfg = write_recipe(make_recipe("train", scenes_dir))
        one_error_line(train("--config", cfg, "--out", out), str(out), "in use by another vidllm run",
                       f"pid {holder.pid}")
        distill = write_recipe(make_recipe("distill", scenes_dir), "distill.yaml")
        one_error_line(runner.invoke(app, ["distill", "--config", str(distill), "--out", str(out)]), "in use")
        assert sorted(p.name for p in out.iterdir()) == [".vidllm.lock"]  # no metrics.jsonl, no checkpoint
    finally:
        holder.kill()
        holder.wait()
    assert train("--config", cfg, "--out", out).exit_code == 0  # the lock dies with its process


def test_resume_removes_stale_save_temporaries(base_run: Path, tmp_path: Path) -> None:
    out = copy_run(base_run, tmp_path)
    partial = out / "checkpoints" / ".tmp-step-00000003-k1ll3d"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 1000)
    (out / ".model.safetensors.x1y2.safetensors").write_bytes(b"\0" * 10)
    res = train("--resume", out)
    assert res.exit_code == 0, res.stderr
    assert "interrupted save" in res.stderr and str(partial) in res.stderr.replace("\n", "")
    assert not partial.exists() and not list(out.glob(".model.safetensors.*"))
    assert (out / "latest").read_text().strip() == "checkpoints/step-00000004"


# --- bad input before any work -----------------------------------------------------------------------------------

def test_out_naming_a_file_or_unwritable_place(scenes_dir: Path, make_recipe, write_recipe,  # noqa: ANN001
                                               tmp_path: Path) -> None:
    cfg = write_recipe(make_recipe("train", scenes_dir))
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me")
    one_error_line(train("--config", cfg, "--out", taken), str(taken), "not a folder")
    assert taken.read_text() == "keep me"
    one_error_line(train("--config", cfg, "--out", "/proc/vidllm-run"), "/proc/vidllm-run")


def test_nan_learning_rate_is_refused_at_recipe_load(scenes_dir: Path, make_recipe,  # noqa: ANN001
                                                     tmp_path: Path) -> None:
    import yaml

    text = yaml.safe_dump(make_recipe("train", scenes_dir)).replace("lr: 0.001", "lr: .nan")
    assert "lr: .nan" in text
    cfg = tmp_path / "nan.yaml"
    cfg.write_text(text)
    one_error_line(train("--config", cfg, "--out", tmp_path / "o"), "optim.lr must be a finite number")
    assert not (tmp_path / "o").exists()


# --- a full disk at each writer -----------------------------------------------------------------------------------

def _raise_torch_style(obj, f, *args, **kwargs):  # noqa: ANN001, ANN202
    """What torch.save does on a full disk with a file object: RuntimeError raised while handling the OSError."""
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None


def _raise_safetensors_style(tensors, filename, metadata=None):  # noqa: ANN001, ANN202
    from safetensors import SafetensorError

    Path(filename).write_bytes(b"\0" * 64)  # a partial file exists when the error strikes
    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _raise_oserror(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise ENOSPC


WRITERS = {
    "torch.save OSError": ("torch.save", _raise_oserror),
    "torch.save RuntimeError": ("torch.save", _raise_torch_style),
    "safetensors SafetensorError": ("safetensors.torch.save_file", _raise_safetensors_style),
    "os.replace (latest / model files)": ("vidllm_core.io.os.replace", _raise_oserror),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_disk_at_each_checkpoint_writer(writer: str, base_run: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = copy_run(base_run, tmp_path)
    before = snapshot(out / "checkpoints")
    target, fake = WRITERS[writer]
    if target == "vidllm_core.io.os.replace":  # let the checkpoint folder's own rename through, fail the atomic files
        real = os.replace

        def fake(src, dst):  # noqa: ANN001, ANN202, F811
            if Path(dst).name in ("latest", "model.safetensors", "config.json"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(src, dst)
    monkeypatch.setattr(target, fake)
    line = one_error_line(train("--resume", out), "No space left on device")
    if target != "vidllm_core.io.os.replace":  # before the new folder is in place: the old one is the latest
        assert "step-00000002 is kept" in line
        assert snapshot(out / "checkpoints") == before  # no partial folder, the last good checkpoint unchanged
    assert (out / "latest").read_text().strip() == "checkpoints/step-00000002"
    assert not list(out.rglob(".tmp-*")) and not list(out.glob(".latest.*"))
    assert (out / "checkpoints" / "step-00000002" / "model.safetensors").read_bytes() == \
        before["step-00000002/model.safetensors"]
    monkeypatch.undo()
    res = train("--resume", out)  # space again: the run goes on from the kept checkpoint
    assert res.exit_code == 0 and "resumed at step 2" in res.stderr, res.stderr


def test_real_full_tmpfs_keeps_the_last_good_checkpoint(base_run: Path, tmp_path: Path) -> None:
    """A real ENOSPC: a tmpfs with room for the run and its step-2 checkpoint, not for the step-4 one."""
    used = sum(p.stat().st_size for p in base_run.rglob("*") if p.is_file())
    ckpt = sum(p.stat().st_size for p in (base_run / "checkpoints").rglob("*") if p.is_file())
    with mounted_tmpfs(tmp_path / "disk", f"size={(used + ckpt // 2) // 1024}k") as disk:
        out = disk / "run"
        shutil.copytree(base_run, out)
        before = snapshot(out / "checkpoints")
        line = one_error_line(train("--resume", out), "No space left on device", "step-00000002 is kept")
        assert str(out) in line
        assert snapshot(out / "checkpoints") == before
        assert (out / "latest").read_text().strip() == "checkpoints/step-00000002"
