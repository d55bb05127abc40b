"""Request-head limits on a real uvicorn server (127.0.0.1), driven by a raw socket client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from eaves.stack import free_port
from edge.emulator.limits import BoundedHttpToolsProtocol, limits_from_env, uvicorn_options
from edge.settings import SettingsError

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
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
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

    def test_a_later_head_gets_its_whole_time_on_a_kept_alive_connection(self, server: tuple[str, int]) -> None:
        """One timer per connection: the one armed for the first request fires (0.5 s) while the second head,
        begun at 0.3 s, is half sent; that head still has until 0.8 s, and completing it at 0.65 s passes."""
        first = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"
        with socket.create_connection(server, timeout=10) as sock:
            sock.sendall(first)
            threading.Event().wait(0.3)
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n")
            threading.Event().wait(0.35)
            sock.sendall(b"connection: close\r\n\r\n")
            received = read_until_closed(sock)
        assert received.count(b"HTTP/1.1 200") == 2 and b"408" not in received

    def test_a_kept_alive_connection_may_rest_between_requests(self, server: tuple[str, int]) -> None:
        """The head deadline runs from a head's first byte: a pause between requests longer than it is no
        slow head (uvicorn's keep-alive timeout governs idle connections)."""
        with socket.create_connection(server, timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            threading.Event().wait(0.8)
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            received = read_until_closed(sock)
        assert received.count(b"HTTP/1.1 200") == 2

    def test_uvicorn_options_name_the_bounded_protocol(self) -> None:
        """`eaves edge` and `eaves origin` pass these options to uvicorn."""
        assert uvicorn_options()["http"] is BoundedHttpToolsProtocol


class TestLimitsFromEnv:
    """The two variables are checked once, at start-up, with a message naming the variable (it was a raw
    ValueError traceback from an int() at import)."""

    def test_defaults_and_values(self) -> None:
        assert limits_from_env({}) == (32 * 1024, 10.0)
        assert limits_from_env({"EAVES_MAX_HEADER_BYTES": " 4096 ", "EAVES_HEADER_TIMEOUT_S": "2.5"}) == (4096, 2.5)

    @pytest.mark.parametrize(("name", "value"), [
        ("EAVES_MAX_HEADER_BYTES", "abc"), ("EAVES_MAX_HEADER_BYTES", "-1"), ("EAVES_MAX_HEADER_BYTES", "12.5"),
        ("EAVES_MAX_HEADER_BYTES", "10"), ("EAVES_MAX_HEADER_BYTES", str(2 ** 40)), ("EAVES_MAX_HEADER_BYTES", ""),
        ("EAVES_HEADER_TIMEOUT_S", "soon"), ("EAVES_HEADER_TIMEOUT_S", "0"), ("EAVES_HEADER_TIMEOUT_S", "-3"),
        ("EAVES_HEADER_TIMEOUT_S", "nan"), ("EAVES_HEADER_TIMEOUT_S", "inf"),
    ])
    def test_a_bad_value_names_its_variable(self, name: str, value: str) -> None:
        with pytest.raises(SettingsError, match=name):
            limits_from_env({name: value})

    def test_the_server_commands_refuse_to_start_with_exit_2(self) -> None:
        env = {**os.environ, "EAVES_MAX_HEADER_BYTES": "lots"}
        result = subprocess.run([sys.executable, "-m", "eaves.cli", "edge", "--edge-port", str(free_port())],
                                capture_output=True, text=True, env=env, timeout=60,
                                cwd=Path(__file__).resolve().parents[3])
        assert result.returncode == 2 and "EAVES_MAX_HEADER_BYTES" in result.stderr
        assert "Traceback" not in result.stderr
