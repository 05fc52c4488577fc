"""Deterministic `--limit` / `--shard I/N` selection of evaluation items, by id (issue 4, "Build" 3)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from vidllm_core.errors import ConfigError

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """`"I/N"` with 0 <= I < N -> (I, N)."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_index(uid: str, num_shards: int) -> int:
    """Stable shard of an id: first 8 bytes of SHA-1 of the UTF-8 id, modulo N (independent of file order)."""
    return int.from_bytes(hashlib.sha1(uid.encode("utf-8")).digest()[:8], "big") % num_shards


def select(items: Sequence[T], limit: int | None = None, shard: tuple[int, int] | None = None) -> list[T]:
    """The first `limit` items in file order, then those whose id falls in shard I of N.

    Items need a `uid` attribute. The same `limit` on every shard partitions the same item set, so merged shards
    cover exactly what one unsharded run with that `limit` covers.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    chosen = list(items[:limit] if limit is not None else items)
    if shard is not None:
        i, n = shard
        chosen = [it for it in chosen if shard_index(it.uid, n) == i]  # type: ignore[attr-defined]
    return chosen
