"""Shared validation for the benchmark loaders (file formats: ../shared/docs/FORMATS.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidllm_core.errors import DataError


class Problems:
    """Collects per-record problems: strict mode raises the first as `DataError`, lenient mode keeps them all.

    Lenient mode is what `vidllm eval --dry-run` uses to list every problem in a file; the offending record is
    skipped. Problems that make the whole file unreadable (malformed JSON, wrong top-level type) always raise.
    """

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        if self.strict:
            raise DataError(message)
        self.messages.append(message)


def read_text(path: str | os.PathLike, what: str) -> str:
    """A non-empty UTF-8 text file; missing, non-UTF-8 or empty files become one `DataError` line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty {what} file")
    return text


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a JSON file; any decoding problem becomes one `DataError` line naming the file and position."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def where(path: Path, index: int, record_id: Any = None) -> str:
    """`file: record 3 (id 'x')` prefix for messages."""
    rid = f" (id {record_id!r})" if record_id is not None else ""
    return f"{path}: record {index}{rid}"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: Any) -> int | None:
    """An int, or an int written as a decimal string (ScanRefer stores ids as strings); None if neither."""
    if is_int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def str_list(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def int_list(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, list):
        out = [as_int(v) for v in value]
        if all(v is not None for v in out):
            return tuple(out)  # type: ignore[arg-type]
    return None


def scene_id_problem(scene_id: Any) -> str | None:
    """Why `scene_id` is not usable as a folder name under a scenes directory (None if it is fine)."""
    if not isinstance(scene_id, str) or not scene_id.strip():
        return f"scene id {scene_id!r} is not a non-empty string"
    if scene_id in (".", "..") or "/" in scene_id or "\\" in scene_id or os.path.isabs(scene_id) or "\x00" in scene_id:
        return f"scene id {scene_id!r} is not a plain folder name (it would escape the scenes directory)"
    return None


def scene_path(scenes_dir: str | os.PathLike, scene_id: str) -> Path:
    """`scenes_dir/scene_id`, refusing ids that would leave `scenes_dir` (`../x`, absolute paths, separators)."""
    problem = scene_id_problem(scene_id)
    if problem:
        raise DataError(problem)
    root = Path(scenes_dir)
    path = root / scene_id
    if path.resolve().parent != root.resolve():  # a symlinked scenes_dir is fine, a symlinked escape is not
        if not path.is_symlink():
            raise DataError(f"scene id {scene_id!r} resolves outside the scenes directory {root}")
    return path


def expect_list(obj: Any, path: Path, what: str) -> list:
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of {what} records at the top level, got {type(obj).__name__}")
    return obj


def missing_fields(record: Any, fields: Sequence[str]) -> list[str]:
    if not isinstance(record, dict):
        return ["<record is not a JSON object>"]
    return [f for f in fields if f not in record]
