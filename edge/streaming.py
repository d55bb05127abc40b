"""Streaming at the edge: relay the origin's SSE as it arrives, keep the connection warm, end broken
streams visibly, and replay stored answers as streams.

The relay never buffers: each chunk the origin sends is yielded as soon as it is read. While no chunk
has arrived for ``heartbeat_s`` (a model that has not produced its first token yet), it sends an SSE
comment, which clients ignore and proxies count as traffic. Waiting and the timer are raced with a
task that survives the timer (``asyncio.wait``, not ``wait_for``, which would cancel the read and
kill the origin stream); that works on CPython and in Pyodide alike, with no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from edge import errors
from shared import sse


async def relay(body: AsyncIterator[bytes], *, heartbeat_s: float | None) -> AsyncIterator[bytes]:
    """The origin's SSE stream as it comes, with heartbeats while it is silent, ended with an error
    event if it breaks or stops short of ``[DONE]``."""
    watcher = sse.StreamWatcher()
    iterator = aiter(body)
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(_next(iterator))
            while heartbeat_s:
                done, _ = await asyncio.wait({pending}, timeout=heartbeat_s)
                if done:
                    break
                yield sse.HEARTBEAT
            try:
                data = await pending
            except StopAsyncIteration:
                break
            finally:
                pending = None
            if data:
                watcher.feed(data)
                yield data
    except errors.EdgeError as exc:
        if not watcher.finished:
            yield sse.error_event(f"{exc.message}; the answer is incomplete", error_type=exc.error_type,
                                  code=exc.code)
        return
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    if not watcher.finished:
        yield sse.error_event("the origin's stream ended before the answer was complete",
                              code="origin_stream_truncated")


async def _next(iterator: AsyncIterator[bytes]) -> bytes:
    return await anext(iterator)


class Rewriter(Protocol):
    """Turns one SSE byte stream into another, chunk by chunk: ``feed`` what arrived, ``close`` at its end."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


def rewrite(body: bytes | AsyncIterator[bytes], make: Callable[[], Rewriter]) -> bytes | AsyncIterator[bytes]:
    """``body`` through a fresh rewriter: at once for a stored stream, as it arrives for a relayed one."""
    if isinstance(body, bytes | bytearray):
        rewriter = make()
        return rewriter.feed(bytes(body)) + rewriter.close()
    return _rewrite_live(body, make())


async def _rewrite_live(body: AsyncIterator[bytes], rewriter: Rewriter) -> AsyncIterator[bytes]:
    try:
        async for data in body:
            out = rewriter.feed(data)
            if out:
                yield out
        tail = rewriter.close()
        if tail:
            yield tail
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


class UsageShaper:
    """Puts a chat stream's usage where OpenAI puts it, whatever the source did.

    With ``stream_options: {"include_usage": true}`` the usage comes in one extra chunk after the finish
    chunk, with ``choices: []``, and in no other chunk; without it, nowhere. Stored answers replay with the
    usage on the finish chunk and a relayed origin stream may carry either shape, so every stream the edge
    sends a chat client passes through here. Events without usage pass through as the same bytes.
    """

    __slots__ = ("_held", "_include", "_reader", "_sent")

    def __init__(self, include_usage: bool) -> None:
        self._include = include_usage
        self._reader = sse.EventReader()
        self._held: bytes | None = None
        self._sent = False

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._shape(raw) for raw in self._reader.feed(data))

    def close(self) -> bytes:
        return self._reader.pending

    def _shape(self, raw: bytes) -> bytes:
        data = sse.data_of(raw)
        if data is None:
            return raw
        if data == b"[DONE]":
            usage = self._held if self._include and not self._sent else None
            return (usage or b"") + raw
        if b'"usage"' not in data:
            return raw
        try:
            payload = json.loads(data)
        except ValueError:
            return raw
        if not isinstance(payload, dict) or payload.get("usage") is None or "error" in payload:
            return raw
        usage = payload.pop("usage")
        if payload.get("choices"):
            self._held = sse.usage_chunk(payload.get("id", ""), payload.get("created", 0), payload.get("model", ""),
                                         usage)
            return sse.event(payload)
        if self._include and not self._sent:
            self._sent = True
            return raw
        return b""


# A stream hit replays the same stored bytes again and again: the replay and its shaping are pure functions
# of those bytes, remembered for small bodies so a stream hit costs about what a plain hit does.
MEMO_ENTRIES = 512
MEMO_MAX_BYTES = 8192
_replayed: dict[bytes, bytes] = {}
_shaped: dict[tuple[bool, bytes], bytes] = {}


def _remember(table: dict[Any, bytes], key: Any, value: bytes, size: int) -> bytes:
    if size <= MEMO_MAX_BYTES:
        if len(table) >= MEMO_ENTRIES:
            del table[next(iter(table))]  # the oldest entry: insertion order
        table[key] = value
    return value


def shape_usage(body: bytes | AsyncIterator[bytes], include_usage: bool) -> bytes | AsyncIterator[bytes]:
    if not isinstance(body, bytes | bytearray):
        return rewrite(body, lambda: UsageShaper(include_usage))
    found = _shaped.get((include_usage, bytes(body)))
    if found is not None:
        return found
    shaped = rewrite(bytes(body), lambda: UsageShaper(include_usage))
    assert isinstance(shaped, bytes)
    return _remember(_shaped, (include_usage, bytes(body)), shaped, len(body))


def replay(body: bytes) -> bytes:
    """A stored completion as a whole SSE stream (a cache hit for a ``stream: true`` request)."""
    found = _replayed.get(body)
    if found is not None:
        return found
    return _remember(_replayed, body, sse.completion_to_sse(body), len(body))


async def collect(body: bytes | AsyncIterator[bytes], limit: int = 1 << 20) -> bytes:
    """A (small) streamed body read whole: the origin's error answers arrive this way."""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    parts: list[bytes] = []
    size = 0
    with contextlib.suppress(errors.EdgeError):
        async for part in body:
            parts.append(part)
            size += len(part)
            if size > limit:
                break
    return b"".join(parts)


def stream_chunks(payload: Any) -> bytes:
    """One SSE event (tests and canned answers)."""
    return sse.event(payload)
