"""Fixtures for the reliability tests (issue 14): the tiny model / video of tests/language and the tiny scenes /
recipes of tests/training, plus the one-line error check every case uses."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.language.conftest import tiny_model_dir, tiny_video  # noqa: F401  (fixtures)
from tests.training.conftest import make_recipe, scenes_dir, teacher_dirs, write_recipe  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """2 shared CPU cores: one intra-op thread."""
    import torch

    torch.set_num_threads(1)


def snapshot(folder) -> dict[str, bytes]:  # noqa: ANN001 - a Path
    """Every file under `folder` (relative name -> bytes): 'nothing already written lost or changed'."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def disk_full_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Simulated full disk for `folder`: every os.replace that lands a file in it fails with ENOSPC."""
    real = os.replace

    def full(src, dst):  # noqa: ANN001, ANN202
        if Path(dst).parent == folder:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A real small (or read-only) file system at `where` for a test: a tmpfs mounted with `options` (root only;
    the test is skipped where it cannot be mounted), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(disk: Path) -> None:
    """Take every free byte of `disk` (a file written until the disk is full)."""
    with open(disk / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        except OSError:
            pass
        try:
            fh.close()
        except OSError:
            pass
