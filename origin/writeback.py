"""Writing to the edge's KV from the origin: the writer port, the local (LMDB) implementation, and
the helpers that turn an answer or a job record into one put.

Only complete answers are written, in one put, so the edge never sees a half answer.
Workers KV keeps entries at least 60 s, so an entry lives for max(60, ttl + the longer stale window)
and carries its own deadlines (fresh, stale-while-revalidate, stale-if-error) in metadata. Production
writes through Cloudflare's REST API (``origin.kv_cloudflare``); ``writer_from_env`` picks one from
``EAVES_KV_WRITER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shared.kv import MIN_EXPIRATION_TTL, KVStore
from shared.wire import CachedAnswer


class KVWriter(Protocol):
    name: str
    # True when put() returns only once the entry is readable by the edge (LMDB): the origin then
    # finishes the stream after the write, so the next identical request is a hit. Remote writers
    # (Workers KV is eventually consistent anyway) are written behind the response instead.
    synchronous: bool

    async def put(self, key: str, value: bytes, *, expiration_ttl: int,
                  metadata: dict[str, Any] | None = None) -> None:
        """Store one entry; raise ``shared.kv.KVError`` (or OSError) on failure."""

    async def aclose(self) -> None: ...


# Kept for callers that name the older, answer-only port.
AnswerWriter = KVWriter


def expiration_for(ttl_s: int, stale_s: int, keep_s: int = 0) -> int:
    return max(MIN_EXPIRATION_TTL, ttl_s + max(stale_s, keep_s))


async def write_answer(writer: KVWriter, key: str, answer: CachedAnswer, expiration_ttl: int) -> None:
    await writer.put(key, answer.body, expiration_ttl=expiration_ttl, metadata=answer.metadata())


class KVAnswerWriter:
    """Writes through any async KVStore: the shared LMDB locally, the in-memory KV in tests."""

    synchronous = True

    def __init__(self, kv: KVStore, name: str = "kv") -> None:
        self.kv = kv
        self.name = name

    async def put(self, key: str, value: bytes, *, expiration_ttl: int,
                  metadata: dict[str, Any] | None = None) -> None:
        await self.kv.put(key, value, expiration_ttl=expiration_ttl, metadata=metadata)

    async def aclose(self) -> None:
        return None


class NoWriter:
    name = "none"
    synchronous = True

    async def put(self, key: str, value: bytes, *, expiration_ttl: int,
                  metadata: dict[str, Any] | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None


class WriterConfigError(ValueError):
    """The KV writer's configuration is incomplete; the message names the variable."""


def writer_from_env(environ: Mapping[str, str], kv_path: Any) -> KVWriter:
    """``EAVES_KV_WRITER``: ``lmdb`` (default, the local stack's KV) or ``cloudflare`` (Workers KV over REST)."""
    kind = environ.get("EAVES_KV_WRITER", "lmdb").strip().lower()
    if kind == "lmdb":
        from shared.kv_lmdb import AsyncLmdbKV, LmdbKV

        return KVAnswerWriter(AsyncLmdbKV(LmdbKV(kv_path)), name="lmdb")
    if kind == "none":
        return NoWriter()
    if kind == "cloudflare":
        from origin.kv_cloudflare import CloudflareKVWriter

        return CloudflareKVWriter.from_env(environ)
    raise WriterConfigError(f"EAVES_KV_WRITER={kind!r} is not a known writer (lmdb, cloudflare, none)")

