"""edge.emulator.one_write: a fixed-length response leaves in one write, and otherwise exactly as uvicorn sends it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("httptools")

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.server import ServerState

from eaves.bench.hitpath import CollectingTransport
from edge.emulator.limits import uvicorn_options
from edge.emulator.one_write import OneWriteCycle

BODY = b'{"answer": "from the cache"}'


class Transport(CollectingTransport):
    """Records what a cycle or protocol writes, each write copied as it was at the time."""

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    @property
    def writes(self) -> list[bytes]:
        return self.written


async def fixed_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"x-edge-route", b"hit"), (b"content-length", b"%d" % len(BODY))]})
    await send({"type": "http.response.body", "body": BODY})


async def streamed_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def served(app: Any, request: bytes) -> list[bytes]:
    """``request`` through the protocol `eaves edge` serves with (uvicorn's, with the edge's limits)."""
    protocol_class = uvicorn_options()["http"]
    state = ServerState()
    config = Config(app, http=protocol_class, access_log=False, lifespan="off", log_level="warning")
    protocol = protocol_class(config, state, {}, _loop=asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    await asyncio.sleep(0)  # the protocol parses a loop round's data from the ready queue (edge.emulator.limits)
    while state.tasks:
        await next(iter(state.tasks))
    protocol.connection_lost(None)
    return transport.writes


POST = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"


async def test_a_fixed_length_response_is_one_write() -> None:
    writes = await served(fixed_app, POST)
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n" + BODY)
    assert b"\r\nx-edge-route: hit\r\n" in writes[0]


async def test_a_streamed_response_head_is_not_held_for_its_body() -> None:
    """A stream's head goes out before its first chunk, as uvicorn sends it (a client sees the status at once)."""
    writes = await served(streamed_app, POST)
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in writes[0]
    assert b"".join(writes[1:]) == b"9\r\ndata: 1\n\n\r\n" + b"e\r\ndata: [DONE]\n\n\r\n" + b"0\r\n\r\n"


# ---------------------------------------------------------------- same bytes and errors as uvicorn's own cycle

_NAMES = st.sampled_from([b"content-type", b"Content-Length", b"content-length", b"x-edge-route", b"X-Request-Id",
                          b"connection", b"transfer-encoding", b"bad name", b"bad:name", b"", b"age"])
_VALUES = st.one_of(st.sampled_from([b"0", b"5", b"-1", b"x", b"close", b"Keep-Alive, close", b"chunked", b"a\r\nb",
                                     b"tab\there"]), st.binary(max_size=6))
_HEADERS = st.lists(st.tuples(_NAMES, _VALUES), max_size=3)
_BODIES = st.lists(st.tuples(st.binary(max_size=14), st.booleans()), min_size=1, max_size=3)


async def run_cycle(cls: type[RequestResponseCycle], status: int, headers: list[tuple[bytes, bytes]],
                    bodies: list[tuple[bytes, bool]], method: str, keep_alive: bool,
                    default_headers: list[tuple[bytes, bytes]]) -> tuple[Any, ...]:
    transport = Transport()
    completed: list[int] = []
    cycle = cls({"method": method, "headers": [], "type": "http"},  # type: ignore[arg-type]
                transport, FlowControl(transport), logging.getLogger("test"), logging.getLogger("test"),  # type: ignore[arg-type]
                False, default_headers, asyncio.Event(), False, keep_alive, lambda: completed.append(1))
    outcomes: list[str] = []
    messages: list[dict[str, Any]] = [{"type": "http.response.start", "status": status, "headers": headers}]
    messages += [{"type": "http.response.body", "body": body, "more_body": more} for body, more in bodies]
    for message in messages:
        try:
            await cycle.send(message)  # type: ignore[arg-type]
            outcomes.append("ok")
        except Exception as exc:  # compared, whatever it is
            outcomes.append(f"{type(exc).__name__}: {exc}")
            break
    return (b"".join(transport.writes), outcomes, transport.closed, cycle.response_complete, cycle.keep_alive,
            completed)


@settings(max_examples=800, deadline=None)
@example(200, [(b"connection", b"close")], "right", b"body", False, [], "POST", True, [])
@example(200, [(b"Transfer-Encoding", b"chunked")], "right", b"body", False, [], "POST", True, [])
@example(200, [], "twice", b"body", False, [], "POST", True, [])
@given(status=st.sampled_from([200, 204, 304, 404, 599]), extra=_HEADERS, length=st.sampled_from(["right", "none",
       "wrong", "twice"]), body=st.binary(max_size=14), split=st.booleans(), more=_BODIES,
       method=st.sampled_from(["POST", "GET", "HEAD"]), keep_alive=st.booleans(),
       default_headers=st.sampled_from([[], [(b"date", b"Sat, 28 Nov 2026 01:50:00 GMT")]]))
def test_the_client_gets_exactly_what_uvicorn_sends(status: int, extra: list[tuple[bytes, bytes]], length: str,
                                                    body: bytes, split: bool, more: list[tuple[bytes, bool]],
                                                    method: str, keep_alive: bool,
                                                    default_headers: list[tuple[bytes, bytes]]) -> None:
    """Any head (odd or refused headers included) and any body messages: the same bytes reach the client, the
    same errors reach the app, and the connection ends the same way as with uvicorn's cycle."""
    headers = [(b"content-type", b"application/json"), *extra]
    size = str(len(body)).encode()
    headers += {"right": [(b"content-length", size)], "none": [], "wrong": [(b"content-length", size + b"1")],
                "twice": [(b"content-length", size), (b"content-length", size)]}[length]
    bodies = [(body[:3], True), (body[3:], False)] if split else [(body, False)]
    if length == "none":
        bodies = more
    args = (status, headers, bodies, method, keep_alive, default_headers)
    assert asyncio.run(run_cycle(OneWriteCycle, *args)) == asyncio.run(run_cycle(RequestResponseCycle, *args))


# ---------------------------------------------------------------- keep-alive: one timer per connection


class CountingLoop:
    """The running loop, counting the timers a protocol asks it for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.timers = 0

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.timers += 1
        return self._loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


async def test_kept_alive_requests_share_one_keep_alive_timer() -> None:
    """Twenty requests back to back on one connection: uvicorn made a timer per response (21 in all); now the
    connection has its head deadline and one keep-alive timer."""
    protocol_class = uvicorn_options()["http"]
    state = ServerState()
    config = Config(fixed_app, http=protocol_class, access_log=False, lifespan="off", log_level="warning")
    loop = CountingLoop(asyncio.get_running_loop())
    protocol = protocol_class(config, state, {}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)
    for _ in range(20):
        protocol.data_received(POST)
        await asyncio.sleep(0)
        while state.tasks:
            await next(iter(state.tasks))
    assert len(transport.writes) == 20 and not transport.closed
    assert loop.timers == 2
    protocol.connection_lost(None)


async def serve_keep_alive(keep_alive_s: float) -> tuple[Any, int]:
    import uvicorn

    from eaves.stack import free_port

    port = free_port()
    config = uvicorn.Config(fixed_app, host="127.0.0.1", port=port, http=uvicorn_options()["http"],
                            log_level="error", lifespan="off", timeout_keep_alive=keep_alive_s)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return (server, task), port


async def test_an_idle_connection_is_closed_after_the_keep_alive_time_and_a_busy_one_is_not() -> None:
    """Requests every 0.2 s for 1.5 s on a 0.5 s keep-alive: all answered on one connection (the pending timer
    finds it busy or recently used and waits out the rest); then idle, the server closes it."""
    (server, task), port = await serve_keep_alive(0.5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(8):
            writer.write(POST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert await asyncio.wait_for(reader.readexactly(len(BODY)), 10) == BODY
            await asyncio.sleep(0.2)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server, with nothing more sent
        writer.close()
    finally:
        server.should_exit = True
        await task


class ManualTimers(CountingLoop):
    """The running loop for tasks, with a clock and timers the test moves by hand."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.now = 0.0
        self.pending: list[tuple[float, Any, asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.timers += 1
        handle = asyncio.TimerHandle(self.now + delay, callback, args, self._loop)
        self.pending.append((self.now + delay, callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        """Move the clock, running each timer that falls due (a cancelled one does not run)."""
        self.now += seconds
        due = [entry for entry in self.pending if entry[0] <= self.now]
        self.pending = [entry for entry in self.pending if entry[0] > self.now]
        for _, callback, handle in due:
            if not handle.cancelled():
                callback()


async def test_a_keep_alive_timer_that_fires_mid_request_leaves_the_next_idle_time_timed() -> None:
    """The timer falls due while a request runs: the connection stays open; once that response is done, the
    connection is closed a whole keep-alive time later, and not before."""
    protocol_class = uvicorn_options()["http"]
    state = ServerState()
    config = Config(slow_app, http=protocol_class, access_log=False, lifespan="off", log_level="warning",
                    timeout_keep_alive=5)
    loop = ManualTimers(asyncio.get_running_loop())
    protocol = protocol_class(config, state, {}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)
    RELEASE.set()
    await one_request(protocol, state)  # done at t=0: idle from now
    RELEASE.clear()
    loop.advance(4)
    protocol.data_received(POST)  # a request arrives at t=4 and runs past t=5
    await asyncio.sleep(0)
    loop.advance(2)  # t=6: the timer fell due during the request
    assert not transport.closed
    RELEASE.set()
    while state.tasks:
        await next(iter(state.tasks))  # done at t=6
    loop.advance(4.9)
    assert not transport.closed
    loop.advance(0.2)  # t=11.1: idle for more than 5 s
    assert transport.closed
    protocol.connection_lost(None)


RELEASE = asyncio.Event()


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await RELEASE.wait()
    await fixed_app(scope, receive, send)


async def one_request(protocol: Any, state: ServerState) -> None:
    protocol.data_received(POST)
    await asyncio.sleep(0)
    while state.tasks:
        await next(iter(state.tasks))
