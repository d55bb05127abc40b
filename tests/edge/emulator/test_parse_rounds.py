"""edge.emulator.limits parses a loop round's data from the ready queue, after the answers already queued.

What the deferral must not change: every byte is parsed, in the order it came, before the connection's loss is
handled; no timer judges a connection on data it has not read; one connection's failure strands no other's.
(What it is for, the p99 under saturation, is measured in the README's *Measured*, not here.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("httptools")

from uvicorn.config import Config
from uvicorn.server import ServerState

from edge.emulator.limits import PARSE_ROUNDS, uvicorn_options
from tests.edge.emulator.test_one_write import BODY, POST, ManualTimers, Transport, fixed_app


def connection(loop: Any = None, app: Any = fixed_app, protocol_class: Any = None,
               **config: Any) -> tuple[Any, Transport, ServerState]:
    """One connection into the protocol `eaves edge` serves with (or ``protocol_class``)."""
    protocol_class = protocol_class or uvicorn_options()["http"]
    state = ServerState()
    settings = Config(app, http=protocol_class, access_log=False, lifespan="off", log_level="warning", **config)
    protocol = protocol_class(settings, state, {}, _loop=loop or asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport, state


async def finish(state: ServerState) -> None:
    while state.tasks:
        await asyncio.wait(set(state.tasks))
        await asyncio.sleep(0)  # a finished task leaves the set from its done callback, on the next pass


async def test_a_rounds_data_is_parsed_on_the_next_pass_of_the_ready_queue() -> None:
    """Nothing is parsed inside data_received; the next pass parses every connection of the round, each in
    the order its data came, and they are answered as before."""
    connections = [connection() for _ in range(3)]
    for protocol, _, _ in connections:
        protocol.data_received(POST[:20])
    for protocol, _, _ in connections:
        protocol.data_received(POST[20:])  # the same round: joined to what is pending, in order
    assert all(not state.tasks and not transport.writes for _, transport, state in connections)
    await asyncio.sleep(0)
    for protocol, transport, state in connections:
        await finish(state)
        assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n" + BODY)
        protocol.connection_lost(None)


async def test_data_that_came_before_the_loss_is_read_before_it() -> None:
    """A request whose bytes and the connection's end arrive in one round is parsed before uvicorn learns the
    client left: the app is called for it and sees what uvicorn's own protocol shows it (the disconnect)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    async def run(protocol_class: Any) -> list[Any]:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(scope["path"])
            seen.append((await receive())["type"])

        protocol, transport, state = connection(app=app, protocol_class=protocol_class)
        protocol.data_received(POST)
        protocol.connection_lost(None)
        await asyncio.sleep(0)
        await finish(state)
        return [*seen, transport.writes]

    expected = await run(HttpToolsProtocol)
    assert expected == ["/v1/chat/completions", "http.disconnect", []]
    assert await run(uvicorn_options()["http"]) == expected


async def test_no_timer_judges_a_connection_on_data_it_has_not_read() -> None:
    """The keep-alive timer falls due after a request's bytes arrived but before their round is parsed: the
    connection is busy, not idle, and is not closed; the request is answered."""
    loop = ManualTimers(asyncio.get_running_loop())
    protocol, transport, state = connection(loop=loop, timeout_keep_alive=5)
    protocol.data_received(POST)
    await asyncio.sleep(0)
    await finish(state)  # answered at t=0: idle from now
    loop.advance(4.9)
    protocol.data_received(POST)  # at t=4.9, not parsed yet
    loop.advance(0.2)  # t=5.1: the keep-alive timer falls due first
    assert not transport.closed
    await asyncio.sleep(0)
    await finish(state)
    assert len(transport.writes) == 2 and not transport.closed
    protocol.connection_lost(None)


async def test_a_head_timer_parses_before_it_judges() -> None:
    """A head whose bytes came just before its deadline is not refused as late: the timer reads them first."""
    loop = ManualTimers(asyncio.get_running_loop())
    protocol, transport, state = connection(loop=loop)
    loop.advance(protocol.header_timeout_s - 0.1)
    protocol.data_received(POST)
    loop.advance(0.2)  # the head deadline falls due before the round is parsed
    assert not transport.closed and not any(b"408" in write for write in transport.writes)
    await asyncio.sleep(0)
    await finish(state)
    assert transport.writes and transport.writes[-1].endswith(BODY)
    protocol.connection_lost(None)


async def test_one_connections_failure_strands_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse that raises (a bug, say) is reported by the loop; the connections after it in the round are
    still parsed, on the following pass."""
    connections = [connection() for _ in range(3)]
    broken = connections[1][0]

    def fail() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(broken, "parse_pending", fail)
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    for protocol, _, _ in connections:
        protocol.data_received(POST)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    for index in (0, 2):
        protocol, transport, state = connections[index]
        await finish(state)
        assert len(transport.writes) == 1, index
        protocol.connection_lost(None)
    assert [str(context.get("exception")) for context in errors] == ["boom"]
    assert not PARSE_ROUNDS._rounds  # no round is left waiting for a pass that will not come
