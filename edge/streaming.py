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
from collections.abc import AsyncIterator
from typing import Any

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


def replay(body: bytes) -> bytes:
    """A stored completion as a whole SSE stream (a cache hit for a ``stream: true`` request)."""
    return sse.completion_to_sse(body)


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
