"""Helpers shared by the subcommands: one-line errors and the stderr console."""

from __future__ import annotations

import errno
import os
import sys
from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)

# Storage failures that are the user's environment, not a bug: reported as one line.
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit non-zero (no traceback)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


class user_errors:
    """Context manager: turn library input errors (VidLLMError, OSError on user paths) into one line + exit 2."""

    def __enter__(self) -> "user_errors":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        from vidllm_core.errors import VidLLMError

        if isinstance(exc, VidLLMError):
            fail(str(exc))
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
            fail(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{os.strerror(exc.errno).lower()}{where}")
        return False
