"""Predictions I/O for `vidllm eval`: tolerant JSONL/JSON reading with counted id problems, and the resumable
one-record-at-a-time writer used when a model produces the predictions (issue 4, "Build" 3)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidllm_core.data.benchmarks._common import read_text
from vidllm_core.errors import DataError


def read_records(path: str | os.PathLike, what: str = "predictions") -> list[dict]:
    """Records from a JSONL file (one JSON object per line; blank lines ignored) or a JSON list of objects.

    An empty file, a malformed line or a non-object record raises one `DataError` line naming file and line.
    """
    path = Path(path)
    text = read_text(path, what)
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        lines = list(range(1, len(records) + 1))
    else:
        records, lines = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {n}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            lines.append(n)
    for n, rec in zip(lines, records):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {n}: each {what} record must be a JSON object, got {type(rec).__name__}")
    if not records:
        raise DataError(f"{path}: empty {what} file (no records)")
    return records


@dataclass
class PredictionStats:
    """What happened while matching prediction records to the evaluated ids."""

    records: int = 0
    matched: int = 0
    unknown: int = 0                 # ids not among the evaluated ones (other split, other shard, typos)
    duplicates: int = 0              # repeated ids: the first record wins
    missing: int = 0                 # evaluated ids without a prediction: scored as wrong
    examples: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"records": self.records, "matched": self.matched, "unknown_ids": self.unknown,
                "duplicate_ids": self.duplicates, "missing": self.missing}


def index_predictions(records: Iterable[dict], ids: Iterable[str], parse: Callable[[dict, int], tuple[str, Any]],
                      known: Iterable[str] | None = None) -> tuple[dict[str, Any], PredictionStats]:
    """Map evaluated id -> parsed prediction. `parse(record, n)` returns (id, value) or raises `DataError`.

    Ids outside `ids` are counted as unknown, except those in `known` (the rest of the annotation file, e.g.
    other shards), which are silently skipped; repeated ids are counted and the first record kept.
    """
    wanted = set(ids)
    known_set = set(known) if known is not None else set()
    out: dict[str, Any] = {}
    seen: set[str] = set()
    stats = PredictionStats()
    for n, rec in enumerate(records, 1):
        stats.records += 1
        uid, value = parse(rec, n)
        if uid in seen:
            stats.duplicates += 1
            stats.examples.setdefault("duplicate", uid)
            continue
        seen.add(uid)
        if uid in wanted:
            out[uid] = value
        elif uid not in known_set:
            stats.unknown += 1
            stats.examples.setdefault("unknown", uid)
    stats.matched = len(out)
    missing = [i for i in wanted if i not in out]
    stats.missing = len(missing)
    if missing:
        stats.examples["missing"] = sorted(missing)[0]
    return out, stats


# --- resumable writer ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResumeResult:
    already_done: int     # ids found in the file before this run
    written: int          # records appended by this run
    dropped_partial: bool  # a truncated last line (interrupted write) was removed


def _done_ids(path: Path, id_key: str) -> tuple[set[str], bool]:
    """Ids already in `path`; a truncated final line from an interrupted run is cut off the file."""
    if not path.exists():
        return set(), False
    data = path.read_bytes()
    dropped = False
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(cut)
        data, dropped = data[:cut], True
    done: set[str] = set()
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}: line {n}: malformed JSON in the predictions being resumed") from None
        if not isinstance(rec, dict) or id_key not in rec:
            raise DataError(f"{path}: line {n}: record without {id_key!r} in the predictions being resumed")
        done.add(str(rec[id_key]))
    return done, dropped


def write_predictions_resumable(path: str | os.PathLike, ids: Iterable[str],
                                predict: Callable[[str], Mapping[str, Any]], id_key: str = "id",
                                on_record: Callable[[str, bool], None] | None = None) -> ResumeResult:
    """Append `{id_key: id, **predict(id)}` to the JSONL file `path` for every id not already in it.

    Each record is written as one line and flushed + fsynced before the next `predict` call, so an interrupted
    run (crash, Ctrl-C, pre-emption) loses at most the record being written; re-running with the same ids
    resumes where it stopped, without duplicates or gaps. `on_record(id, skipped)` is called for every id
    (progress bars). Ids repeated in `ids` are predicted once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done, dropped = _done_ids(path, id_key)
    before = len(done)
    written = 0
    with path.open("a", encoding="utf-8") as fh:
        for uid in ids:
            uid = str(uid)
            if uid in done:
                if on_record:
                    on_record(uid, True)
                continue
            value = dict(predict(uid))
            value.pop(id_key, None)
            fh.write(json.dumps({id_key: uid, **value}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done.add(uid)
            written += 1
            if on_record:
                on_record(uid, False)
    return ResumeResult(before, written, dropped)


def write_records_atomic(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Write JSONL records atomically (for predictions derived from a file or a baseline)."""
    from vidllm_core.io import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records))
