"""Helpers shared by the subcommands: one-line errors, `warning:` lines and the stderr console."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console

from vidllm_core.errors import VidLLMWarning
from vidllm_core.io import DISK_ERRNOS, os_error_of

console = Console(stderr=True)
_show_warning = warnings.showwarning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """The library's VidLLMWarning as one `warning: ...` line on stderr; other warnings as Python prints them."""
    if issubclass(category, VidLLMWarning):
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


warnings.showwarning = _one_line_warning
# PIL's DecompressionBombWarning (an image over ~89 Mpixel, decoded anyway) becomes an error like its
# DecompressionBombError (over twice that): user_errors reports both as one line.
warnings.filterwarnings("error", message=r".*decompression bomb")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit non-zero (no traceback)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def check_output_files(outputs: list[tuple[str, Optional[Path]]], inputs: list[tuple[str, Optional[Path]]]) -> None:
    """Before any work, one line for an output file (option name, path; None = not asked for) that cannot be
    written or that is one of the inputs."""
    from vidllm_core.errors import VidLLMError
    from vidllm_core.io import check_not_inputs, check_output

    given = [(name, path) for name, path in outputs if path is not None]
    try:
        for name, path in given:
            check_output(path, name, kind="file")
        check_not_inputs(given, [(name, path) for name, path in inputs if path is not None])
    except VidLLMError as exc:
        fail(str(exc))


def read_stdin_line() -> str:
    """One line of standard input ("" at its end). Bytes that are not UTF-8 are kept as lone surrogates (never a
    UnicodeDecodeError that would end a session), so the text check reports that one line as an error."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.readline()
    return buffer.readline().decode("utf-8", errors="surrogateescape")


class user_errors:
    """Context manager: turn library input errors (VidLLMError, OSError on user paths) into one line + exit 2."""

    def __enter__(self) -> "user_errors":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, (typer.Exit, typer.Abort)):  # already reported (fail) or a clean exit
            return False
        from vidllm_core.errors import VidLLMError

        if isinstance(exc, VidLLMError):
            fail(str(exc))
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                            FileExistsError)):
            fail(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc))
        disk = os_error_of(exc)  # torch.save / safetensors report a full disk as RuntimeError / SafetensorError
        if disk is not None and disk.errno in DISK_ERRNOS:
            where = f": {disk.filename}" if disk.filename else ""
            fail(f"{os.strerror(disk.errno).lower()}{where}")
        if type(exc).__name__ in ("DecompressionBombError", "DecompressionBombWarning"):  # PIL, any reader
            fail(f"image refused as a possible decompression bomb: {exc}")
        return False
