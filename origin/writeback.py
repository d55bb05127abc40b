"""Writing answers back to the edge's KV: the port, and the local (LMDB) implementation.

Only complete answers are written, in one put, so the edge never sees a half answer.
Workers KV keeps entries at least 60 s, so an entry lives for max(60, ttl + the longer stale window)
and carries its own deadlines (fresh, stale-while-revalidate, stale-if-error) in metadata.
"""

from __future__ import annotations

from typing import Protocol

from shared.kv import MIN_EXPIRATION_TTL, KVStore
from shared.wire import CachedAnswer


class AnswerWriter(Protocol):
    name: str

    async def write(self, key: str, answer: CachedAnswer, expiration_ttl: int) -> None: ...


def expiration_for(ttl_s: int, stale_s: int, keep_s: int = 0) -> int:
    return max(MIN_EXPIRATION_TTL, ttl_s + max(stale_s, keep_s))


class KVAnswerWriter:
    """Writes through any KVStore: the shared LMDB locally, the in-memory KV in tests."""

    def __init__(self, kv: KVStore, name: str = "kv") -> None:
        self.kv = kv
        self.name = name

    async def write(self, key: str, answer: CachedAnswer, expiration_ttl: int) -> None:
        await self.kv.put(key, answer.body, expiration_ttl=expiration_ttl, metadata=answer.metadata())


class NoWriter:
    name = "none"

    async def write(self, key: str, answer: CachedAnswer, expiration_ttl: int) -> None:
        return None

