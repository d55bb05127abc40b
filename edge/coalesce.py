"""In-process coalescing at the edge: identical misses in one worker (isolate) share one origin call.

The first miss for a key sends to the origin; identical misses that arrive while that call is open
wait for it instead. A non-streamed answer is shared as the same bytes; a streamed one is teed: a
pump reads the origin's stream once into a buffer, and each reader replays what it missed, then
follows live. Nothing here needs threads, so it behaves the same on CPython and in Pyodide; across
workers and edge locations the origin coalesces again.

Not on Cloudflare Workers (``Uncoalesced``): there a request may not use another request's I/O. Read from
workerd (src/workerd/io/io-context.c++, worker.c++, compatibility-date.capnp):
  - I/O objects (streams, request and response bodies, fetch responses, timers' cancelers, ...) belong to
    the request whose handler created them; touching one from another request throws "Cannot perform I/O
    on behalf of a different request".
  - A promise may be awaited from another request once it has settled, but its continuations are queued to
    the request that created it (handle_cross_request_promise_resolution, on from 2024-10-14) and are
    dropped if that request has already finished; a value it carries may still hold the other request's I/O.
  - Python's event loop in Pyodide schedules every task step with setTimeout (pyodide.webloop), in the
    context of whoever called ``set_result``. So a follower woken by the leader's future runs the rest of
    its request inside the leader's context: the response it builds is the leader's I/O object, which its
    own request then cannot read, and if the leader finishes first the follower never wakes.
The origin coalesces identical misses from every edge, so the Worker loses only the in-isolate saving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from edge import errors
from edge.ports import OriginResponse


class Broadcast:
    """One upstream byte stream, read once, replayed to any number of readers."""

    def __init__(self, source: AsyncIterator[bytes], on_done: Callable[[], None] | None = None) -> None:
        self._source = source
        self._on_done = on_done
        self.chunks: list[bytes] = []
        self.error: BaseException | None = None
        self.done = False
        self._changed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for chunk in self._source:
                self.chunks.append(chunk)
                self._wake()
        except BaseException as exc:  # the readers re-raise it; nobody awaits the pump itself
            self.error = exc if isinstance(exc, errors.EdgeError) else errors.UpstreamError(
                "the origin's stream broke", code="origin_stream_broken")
        finally:
            self.done = True
            self._wake()
            if self._on_done is not None:
                self._on_done()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def reader(self) -> AsyncIterator[bytes]:
        self.start()
        index = 0
        while True:
            changed = self._changed
            while index < len(self.chunks):
                yield self.chunks[index]
                index += 1
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            await changed.wait()

    async def finished(self) -> None:
        while not self.done:
            await self._changed.wait()


class _Shared:
    def __init__(self, response: OriginResponse, broadcast: Broadcast | None) -> None:
        self.response = response
        self.broadcast = broadcast

    def copy(self) -> OriginResponse:
        body: Any = self.broadcast.reader() if self.broadcast is not None else self.response.body
        return OriginResponse(self.response.status, self.response.headers, body)


class Coalescer:
    """Open origin calls of this worker, by key."""

    def __init__(self) -> None:
        self._open: dict[str, asyncio.Future[_Shared]] = {}
        self.led = 0
        self.joined = 0

    async def send(self, key: str, send: Callable[[], Awaitable[OriginResponse]]) -> tuple[OriginResponse, bool]:
        """The origin's response for ``key`` and whether this call joined another's (True) or led it."""
        waiting = self._open.get(key)
        if waiting is not None:
            self.joined += 1
            shared = await asyncio.shield(waiting)
            return shared.copy(), True
        self.led += 1
        future: asyncio.Future[_Shared] = asyncio.get_running_loop().create_future()
        self._open[key] = future
        try:
            response = await send()
        except BaseException as exc:
            self._open.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: followers re-raise it, none may be waiting
            raise
        if isinstance(response.body, bytes | bytearray):
            self._open.pop(key, None)
            shared = _Shared(response, None)
        else:
            def close() -> None:
                if self._open.get(key) is future:
                    del self._open[key]

            broadcast = Broadcast(response.body, close)
            shared = _Shared(response, broadcast)
            broadcast.start()
        future.set_result(shared)
        return shared.copy(), False


class Uncoalesced(Coalescer):
    """Every miss makes its own origin call: the Workers rule (see the module docstring). Same interface
    and counters as ``Coalescer``, so the core and its metrics do not need to know which one runs."""

    async def send(self, key: str, send: Callable[[], Awaitable[OriginResponse]]) -> tuple[OriginResponse, bool]:
        self.led += 1
        return await send(), False
