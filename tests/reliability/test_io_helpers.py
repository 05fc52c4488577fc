"""The shared mechanisms of vidllm_core.io (issue 14): one disk-error translation, one output check, one lock."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.reliability.conftest import mounted_tmpfs
from vidllm_core.errors import ConfigError, RunLockedError
from vidllm_core.io import (atomic_path, check_not_inputs, check_output, os_error_of, run_lock, storage_errors,
                            write_text_atomic)


@pytest.fixture
def full_disk(tmp_path: Path):  # noqa: ANN201 - Iterator[Path]
    """A real full file system: a 64 KiB tmpfs."""
    with mounted_tmpfs(tmp_path / "full", "size=64k") as disk:
        yield disk


@pytest.fixture
def read_only_disk(tmp_path: Path):  # noqa: ANN201 - Iterator[Path]
    """A real read-only file system (root ignores permission bits, not this)."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as disk:
        yield disk


def test_read_only_output_is_refused_before_work(read_only_disk: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.fixtures import BENCH
    from tests.helpers.cli import one_error_line
    from vidllm_cli.main import app

    with pytest.raises(ConfigError, match="Read-only file system"):
        check_output(read_only_disk / "run", "--out")
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"question_id": "x", "answer": "y"}\n')
    res = CliRunner().invoke(app, ["eval", "scanqa", "-a", str(BENCH / "scanqa_val_sample.json"), "--predictions",
                                   str(preds), "-o", str(read_only_disk / "out")])
    one_error_line(res, str(read_only_disk / "out"), "Read-only file system")


def test_real_full_disk_in_torch_save_and_safetensors_is_found_as_enospc(full_disk: Path) -> None:
    """Neither writer raises OSError on ENOSPC: torch.save (to a file object) a RuntimeError with the OSError as its
    context, safetensors a SafetensorError with `os error 28` in its message. Both are found."""
    import torch
    from safetensors.torch import save_file

    tensors = {"w": torch.zeros(100_000)}
    with pytest.raises(RuntimeError) as info:
        with open(full_disk / "state.pt", "wb") as fh:
            torch.save(tensors, fh)
    assert not isinstance(info.value, OSError) and os_error_of(info.value).errno == errno.ENOSPC
    with pytest.raises(Exception) as info:
        save_file(tensors, str(full_disk / "model.safetensors"))
    assert not isinstance(info.value, OSError) and os_error_of(info.value).errno == errno.ENOSPC


def test_safetensors_message_and_unrelated_errors() -> None:
    from safetensors import SafetensorError

    err = os_error_of(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert err is not None and err.errno == errno.ENOSPC
    assert os_error_of(ValueError("shape mismatch")) is None


def test_storage_errors_name_the_users_path(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as info, storage_errors(target):
        raise RuntimeError("unexpected pos 10 vs 4") from OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    with pytest.raises(KeyError), storage_errors(target):  # not a disk problem: unchanged
        raise KeyError("x")


def test_atomic_write_failure_keeps_the_old_file_and_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def full(src, dst):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError) as info:
        write_text_atomic(target, "new")
    assert info.value.filename == str(target) and target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("x")
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    assert target.read_text() == "old"


def test_check_output(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="existing file, not a folder"):
        check_output(tmp_path / "file", "-o")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "sub" / "o.ply", "-o", kind="file")
    with pytest.raises(ConfigError, match="a folder, not a file"):
        check_output(tmp_path, "-o", kind="file")
    with pytest.raises(ConfigError, match="/proc/x/y"):
        check_output("/proc/x/y", "--out")
    check_output(tmp_path / "new" / "deeper", "-o")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()


def test_check_not_inputs(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("x")
    os.link(src, tmp_path / "hard.txt")
    for out in (src, tmp_path / "." / "in.txt", tmp_path / "hard.txt"):
        with pytest.raises(ConfigError, match="is the input VIDEO"):
            check_not_inputs([("--cameras", out)], [("VIDEO", src)])
    check_not_inputs([("--cameras", tmp_path / "other.json")], [("VIDEO", src)])


def test_run_lock(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with run_lock(folder):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"), run_lock(folder):
            pass
        (folder / "kept.txt").write_text("x")
    with run_lock(folder):  # released: a later run takes it
        pass
    assert (folder / "kept.txt").exists()
    with run_lock(tmp_path / "empty"):
        pass
    assert not (tmp_path / "empty").exists()  # created and left empty by a failed run: removed again
