"""Safe file output (not in the paper): atomic writes (temporary file beside the target, then a rename), storage
errors named by the user's path, output-path checks before work starts, exclusive run-folder locks, file hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vidllm_core.errors import ConfigError, RunLockedError

LOCK_FILE = ".vidllm.lock"
# Storage failures that are the user's environment (full / read-only / failing disk), not a bug.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_RUST_OS_ERROR = re.compile(r"os error (\d+)")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed.

    `suffix` defaults to the target's suffix so writers that dispatch on the extension (trimesh) work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with storage_errors(target):
            yield tmp_path
            if tmp_path.exists():  # mkstemp makes 0600 files; give the result the usual umask-based mode
                os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder `tmp` to `target`, replacing an existing `target` by renames (never half-written).

    `tmp` (typically from `tempfile.mkdtemp` beside `target`, which makes it 0700) gets the usual umask-based mode.
    """
    tmp, target = Path(tmp), Path(target)
    os.chmod(tmp, 0o777 & ~_umask())
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    write_text_atomic(target, json.dumps(obj, indent=indent) + "\n")


def os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind a writer's failure: `exc` itself, one in its cause / context chain (torch.save to a file
    object raises RuntimeError from the OSError), or the `os error N` that safetensors' Rust writer puts in its
    SafetensorError message. None when there is none."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        found = _RUST_OS_ERROR.search(str(e))
        if found:
            code = int(found.group(1))
            return OSError(code, os.strerror(code))
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def storage_errors(target: str | os.PathLike) -> Iterator[None]:
    """Re-raise a write failure caused by the disk (full, quota, read-only, I/O error), whatever type the writer
    used, as `OSError(errno, strerror, target)`: the CLI reports it as one line naming the user's path instead of a
    temporary file. Other errors pass through unchanged."""
    try:
        yield
    except Exception as exc:
        err = os_error_of(exc)
        if err is None or err.errno not in DISK_ERRNOS:
            raise
        raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(target)) from exc


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output(path: str | os.PathLike, what: str, kind: str = "dir") -> None:
    """Before any work: refuse (ConfigError naming `path`) an output that cannot be written. `kind` "dir": `path` is
    a folder to create or reuse; "file": a file to create or replace. Nothing is created (the probe is an
    anonymous temporary file in the nearest existing folder)."""
    path = Path(path)
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ConfigError(f"cannot write to {what} {path}: it is an existing file, not a folder")
    if kind == "file" and path.is_dir():
        raise ConfigError(f"cannot write to {what} {path}: it is a folder, not a file")
    folder = path if kind == "dir" else path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot write to {what} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to {what} {path}: {existing} is not writable ({exc.strerror or exc})") \
            from None


def check_not_inputs(outputs: Iterable[tuple[str, str | os.PathLike]],
                     inputs: Iterable[tuple[str, str | os.PathLike]]) -> None:
    """Refuse (ConfigError) an output path that is one of the inputs (same resolved path or same file); both are
    (option name, path) pairs."""
    inputs = list(inputs)
    for out_name, out in outputs:
        for in_name, src in inputs:
            if _same_path(Path(out), Path(src)):
                raise ConfigError(f"{out_name} {out} is the input {in_name}; writing it would destroy the input: "
                                  "choose another output path")


def _same_path(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on a run folder (fcntl.flock on `FOLDER/.vidllm.lock`) for the whole `with` block;
    a second process gets RunLockedError at once. A folder this call created and that is still empty at the end
    (the run failed before writing anything) is removed again. The lock file itself stays: deleting it would let
    two processes lock different files."""
    import fcntl

    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_FILE
    fh = open(lock_path, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RunLockedError(f"{folder} is in use by another vidllm run ({holder}); wait for it to finish or "
                             "choose another folder") from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        yield folder
    finally:
        if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            lock_path.unlink()
            folder.rmdir()
        fh.close()  # releases the lock
