"""Request-head limits on a real uvicorn server (127.0.0.1), driven by a raw socket client; and the
emulator's ASGI front: repeated headers joined as Fetch does, /metrics only with the operator's token."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from eaves.stack import free_port
from edge.emulator.asgi import EdgeASGI, joined_headers
from edge.emulator.limits import BoundedHttpToolsProtocol, uvicorn_options
from shared.local_stack import LocalStack

LIMIT = 4096


class SmallLimits(BoundedHttpToolsProtocol):
    max_header_bytes = LIMIT
    header_timeout_s = 0.5


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"body_bytes": size}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    config = uvicorn.Config(echo_app, host="127.0.0.1", port=port, http=SmallLimits, log_level="error",
                            lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        threading.Event().wait(0.05)
    yield ("127.0.0.1", port)
    srv.should_exit = True
    thread.join(10)


def exchange(address: tuple[str, int], *parts: bytes) -> bytes:
    """Send ``parts`` (ignoring a server that hangs up mid-way) and read until the server closes."""
    with socket.create_connection(address, timeout=10) as sock:
        try:
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def status_and_json(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


class TestRequestHeadLimits:
    def test_a_normal_request_and_a_large_body_pass(self, server: tuple[str, int]) -> None:
        """Headers under the bound pass; a body far over the header bound is not mistaken for headers."""
        body = b"x" * 200_000
        raw = exchange(server, b"POST / HTTP/1.1\r\nhost: a\r\nconnection: close\r\ncontent-length: "
                       + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert status_and_json(raw) == (200, {"body_bytes": 200_000})

    def test_a_header_past_the_bound_gets_431_json(self, server: tuple[str, int]) -> None:
        """A head over the bound, sent at once: 431 with an OpenAI-shaped error and a request id."""
        raw = exchange(server, b"GET / HTTP/1.1\r\nhost: a\r\nx-big: " + b"a" * (2 * LIMIT) + b"\r\n\r\n")
        status, body = status_and_json(raw)
        assert status == 431 and body["error"]["code"] == "headers_too_large"
        assert b"x-request-id: " in raw

    def test_a_32_mib_header_is_cut_off_not_buffered(self, server: tuple[str, int]) -> None:
        """Streaming an endless header: the server answers 431 and hangs up long before 32 MiB."""
        chunks = [b"GET / HTTP/1.1\r\nhost: a\r\nx-big: "] + [b"a" * 65536] * 512
        raw = exchange(server, *chunks)
        assert raw.startswith(b"HTTP/1.1 431")

    def test_a_head_that_never_finishes_is_closed(self, server: tuple[str, int]) -> None:
        """Slowloris: half a head, then silence; the server answers 408 and closes the connection."""
        raw = exchange(server, b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: ")
        status, body = status_and_json(raw)
        assert status == 408 and body["error"]["code"] == "header_timeout"

    def test_an_idle_connection_is_closed(self, server: tuple[str, int]) -> None:
        """A connection that never sends a byte is closed (without a response)."""
        assert exchange(server) == b""

    def test_keep_alive_requests_each_get_their_own_budget(self, server: tuple[str, int]) -> None:
        """Several requests on one connection, each with headers just under the bound, all pass."""
        one = b"GET / HTTP/1.1\r\nhost: a\r\nx-fill: " + b"a" * (LIMIT - 200) + b"\r\n\r\n"
        last = b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
        raw = exchange(server, one, one, one, last)
        assert raw.count(b"HTTP/1.1 200") == 4

    def test_uvicorn_options_name_the_bounded_protocol(self) -> None:
        """`eaves edge` and `eaves origin` pass these options to uvicorn."""
        assert uvicorn_options()["http"] is BoundedHttpToolsProtocol


class TestEmulatorFront:
    def test_repeated_headers_are_joined_like_fetch(self) -> None:
        """Two Authorization fields reach the core as one value with ', ' (then refused there)."""
        raw = [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b"), (b"x", b"1")]
        assert joined_headers(raw) == {"authorization": "Bearer a, Bearer b", "x": "1"}

    async def test_metrics_need_the_operator_token(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On the client-facing port, /metrics answers 401 JSON without the token, Prometheus text with it."""
        monkeypatch.setenv("EAVES_INTENT", "off")
        app = EdgeASGI(tmp_path, {"EAVES_METRICS_DIR": str(tmp_path / "m"), "EAVES_INTENT": "off",
                                  "EAVES_LOG": "off"})
        token = LocalStack(tmp_path).metrics_token()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            refused = await client.get("/metrics", headers={"authorization": "Bearer eav_client_key"})
            allowed = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "metrics_token_required"
        assert allowed.status_code == 200 and "eaves_edge" in allowed.text


class TestLmdbRateLimiter:
    async def test_budgets_of_different_tiers_share_one_counter(self, tmp_path: Path) -> None:
        """The emulator's counters are named by the core alone: a free (2) and a pro (3) key of one tenant
        together get 3 requests, not 5."""
        from edge.emulator.adapters import LmdbRateLimiter
        from edge.ratelimit import rate_limit_key

        limiter = LmdbRateLimiter(tmp_path, clock=lambda: 1_000_000.0)
        name = rate_limit_key("acme", "chat")
        allowed = [(await limiter.acquire(name, limit, 60)).allowed for limit in (2, 3, 2, 3, 3)]
        assert allowed == [True, True, False, True, False]

    async def test_overlong_names_are_hashed_not_refused(self, tmp_path: Path) -> None:
        """A counter name past LMDB's 511-byte key limit still counts (hashed), never raises."""
        from edge.emulator.adapters import LmdbRateLimiter

        limiter = LmdbRateLimiter(tmp_path, clock=lambda: 1_000_000.0)
        assert [(await limiter.acquire("ü" * 600, 1, 60)).allowed for _ in range(2)] == [True, False]


async def test_a_request_httpx_refuses_to_write_is_not_an_origin_failure() -> None:
    """httpx's LocalProtocolError (raised before sending) becomes a 400 and leaves the breaker closed."""
    from edge import errors
    from edge.emulator.adapters import HttpxOriginClient
    from edge.ports import OriginRequest

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError("Illegal header value b'acme '")

    client = HttpxOriginClient("http://o", transport=httpx.MockTransport(refuse))
    with pytest.raises(errors.UnsendableRequest) as info:
        await client.send(OriginRequest("/v1/chat/completions", b"{}"))
    assert not isinstance(info.value, errors.UpstreamError) and info.value.status == 400
