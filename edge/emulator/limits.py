"""Limits on what a client may make the local servers hold before a request even starts.

uvicorn's httptools protocol has no bound on the size of a request's head and no deadline for it
(its keep-alive timer runs only between requests, and stops at the first byte of the next one), so a
client could make a server buffer a 32 MiB header, or hold a connection open forever by sending one
byte a minute. ``BoundedHttpToolsProtocol`` adds both:

- the request line and headers together may hold ``max_header_bytes``; past that the answer is
  ``431`` with an OpenAI-shaped JSON error, and the connection is closed;
- a request's head must be complete ``header_timeout_s`` after its first byte (or after the
  connection opened); otherwise ``408`` (when anything had arrived) and the connection is closed.

Where httptools is missing, uvicorn's h11 protocol is used with its own size bound (its 400 is plain
text; the deadline is then uvicorn's keep-alive timeout only).

It also parses each loop round's requests after the previous round's answers (``_ParseRounds``): uvloop
reads and parses every connection in its poll, runs their apps in the next pass of its ready queue, and polls
again at once, so the connection answered last is rarely ready at that poll and waits a whole round. Parsed
from the ready queue instead, a round's requests are read after the answers already queued, and that reading
is the slack the last answer's client needs (README, *Measured*: the p99 under saturation).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping
from typing import Any

from edge.errors import EdgeError, RequestHeadersTooLarge, RequestTimeout
from edge.ids import REQUEST_IDS
from edge.settings import SettingsError

HEADER_BYTES_RANGE = (1024, 1024 * 1024)  # below a request line and a few headers; above any real head


def limits_from_env(environ: Mapping[str, str]) -> tuple[int, float]:
    """``EAVES_MAX_HEADER_BYTES`` (whole bytes, 1 KiB to 1 MiB) and ``EAVES_HEADER_TIMEOUT_S`` (seconds > 0),
    or a ``SettingsError`` naming the variable."""
    raw_bytes = environ.get("EAVES_MAX_HEADER_BYTES", str(32 * 1024)).strip()
    low, high = HEADER_BYTES_RANGE
    if not raw_bytes.isdigit() or not low <= int(raw_bytes) <= high:
        raise SettingsError(f"EAVES_MAX_HEADER_BYTES must be a whole number of bytes from {low} to {high}, "
                            f"not {raw_bytes!r}")
    raw_timeout = environ.get("EAVES_HEADER_TIMEOUT_S", "10").strip()
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = math.nan
    if not math.isfinite(timeout) or timeout <= 0:
        raise SettingsError(f"EAVES_HEADER_TIMEOUT_S must be a number of seconds > 0 (e.g. 10), not {raw_timeout!r}")
    return int(raw_bytes), timeout


MAX_HEADER_BYTES, HEADER_TIMEOUT_S = limits_from_env(os.environ)

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    from edge.emulator.one_write import OneWriteCycle

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    HAVE_HTTPTOOLS = False


def error_response(error: EdgeError, reason: str) -> bytes:
    """A complete HTTP/1.1 response carrying ``error`` as every other error is carried, closing the connection."""
    response = error.to_response()
    body = response.body if isinstance(response.body, bytes) else b""
    head = (f"HTTP/1.1 {error.status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-request-id: {REQUEST_IDS.new()}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class _Refused(Exception):
    """Raised from a parser callback to stop httptools after the connection was answered and closed."""


class _ParseRounds:
    """Per event loop, the connections whose data arrived in this round, parsed together from one ready-queue
    callback. A round is scheduled by its first connection and dropped when parsed, so a closed loop leaves at
    most its own list behind."""

    def __init__(self) -> None:
        self._rounds: dict[Any, list[Any]] = {}

    def add(self, loop: Any, protocol: Any) -> None:
        pending = self._rounds.get(loop)
        if pending is None:
            self._rounds[loop] = [protocol]
            loop.call_soon(self._parse, loop)
        else:
            pending.append(protocol)

    def _parse(self, loop: Any) -> None:
        protocols = self._rounds.pop(loop, [])
        for index, protocol in enumerate(protocols):
            try:
                protocol.parse_pending()
            except BaseException:
                for rest in protocols[index + 1:]:  # one connection's failure leaves the others' data unread
                    self.add(loop, rest)
                raise


PARSE_ROUNDS = _ParseRounds()


if HAVE_HTTPTOOLS:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        max_header_bytes = MAX_HEADER_BYTES
        header_timeout_s = HEADER_TIMEOUT_S

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._in_head = True  # until the current request's headers are complete
            self._head_bytes = 0
            self._refused = False
            # When the current head began (the connection's start counts for the first); None between heads.
            self._head_started: float | None = self.loop.time()
            self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout_s,
                                                                                self._head_timeout)
            self._idle_since: float | None = None  # when the last response completed; None while a request runs
            self._idle_timer: asyncio.TimerHandle | None = None  # the keep-alive timer (below), one at a time
            self._pending: bytes | None = None  # arrived, not parsed yet (PARSE_ROUNDS)

        def connection_lost(self, exc: Exception | None) -> None:
            self.parse_pending()  # what arrived before the connection went is read first, as it came first
            self._cancel_timer()
            super().connection_lost(exc)
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None

        def data_received(self, data: bytes) -> None:
            # Parsed with the rest of this round's data, after the answers already queued (module docstring).
            self._idle_since = None  # busy from now: the keep-alive timer must not close it before the parse
            pending = self._pending
            if pending is None:
                self._pending = data
                PARSE_ROUNDS.add(self.loop, self)
            else:
                self._pending = pending + data

        def parse_pending(self) -> None:
            data = self._pending
            if data is not None:
                self._pending = None
                self._parse(data)

        def _parse(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_started is None:
                    self._head_started = self.loop.time()
                # One timer per connection, not one per request: a timer still pending from an earlier head
                # is moved to this head's deadline when it fires (_head_timeout), so keep-alive requests
                # back to back do not each create and cancel one (~2 µs of a ~100 µs cache hit).
                if self._head_timer is None:
                    self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)
            super().data_received(data)
            # Still in the head after this chunk and already past the bound: the rest is never read.
            if self._in_head and not self._refused and self._head_bytes > self.max_header_bytes:
                self._refuse_too_large()

        def on_headers_complete(self) -> None:
            # The head is at most the bytes read while in it, so only a read past the bound needs the sum.
            if self._head_bytes > self.max_header_bytes:
                size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
                if size > self.max_header_bytes:  # a head that arrived whole in one large read
                    self._refuse_too_large()
                    raise _Refused
            self._in_head = False
            self._head_bytes = 0
            self._head_started = None  # the pending timer, if any, finds no head when it fires
            super().on_headers_complete()
            cycle = self.cycle
            if type(cycle) is RequestResponseCycle:
                # uvicorn builds its own cycle here; its task has not started yet, so the one-write subclass
                # (same state, edge.emulator.one_write) is what answers this request.
                cycle.__class__ = OneWriteCycle

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True  # the next request on this connection; its timer starts at its first byte

        # Keep-alive: uvicorn creates a timer when each response completes and cancels it at the next request's
        # first byte (~1.1 µs of a ~85 µs cache hit in uvloop, and a timer handle each time). Here a connection has
        # at most one: it is armed when a response completes and none is pending, and when it fires it closes the
        # connection only if it has been idle since for the whole keep-alive time; otherwise it waits out the rest.
        # The same connections are closed at the same moments as with uvicorn's own timer.

        def _unset_keepalive_if_required(self) -> None:
            self._idle_since = None  # a request is under way: the pending timer, if any, finds it busy

        def on_response_complete(self) -> None:
            # uvicorn's own (HttpToolsProtocol.on_response_complete), with the timer above instead of a new one.
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self._unset_keepalive_if_required()
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._idle_since = self.loop.time()
            if self._idle_timer is None:
                self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_timeout)

        def _idle_timeout(self) -> None:
            self._idle_timer = None
            self.parse_pending()  # a timer judges a connection on what it has read, never on unread data
            since = self._idle_since
            if since is None or self.transport.is_closing():
                return  # busy (the next response arms a timer again) or already closing
            left = since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self._idle_timer = self.loop.call_later(left, self._idle_timeout)
                return
            self.timeout_keep_alive_handler()

        def send_400_response(self, msg: str) -> None:
            if not self._refused:  # after our own refusal httptools reports the aborted parse: say nothing
                super().send_400_response(msg)

        def _refuse_too_large(self) -> None:
            self._refuse(error_response(RequestHeadersTooLarge(
                f"the request line and headers hold over {self.max_header_bytes} bytes, the most this server "
                "accepts; send fewer or shorter headers", code="headers_too_large"), "Request Header Fields Too Large"))

        def _head_timeout(self) -> None:
            self._head_timer = None
            self.parse_pending()
            if not self._in_head or self._refused or self.transport.is_closing() or self._head_started is None:
                return
            left = self._head_started + self.header_timeout_s - self.loop.time()
            if left > 0:  # armed for an earlier head: this one still has time
                self._head_timer = self.loop.call_later(left, self._head_timeout)
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a response is still going out; the next request's head is not late yet
            if self._head_bytes == 0:
                self._refused = True
                self.transport.close()  # an idle connection that never asked anything
                return
            self._refuse(error_response(RequestTimeout(
                f"the request's headers did not arrive within {self.header_timeout_s:g}s; send the whole head at "
                "once", code="header_timeout"), "Request Timeout"))

        def _refuse(self, response: bytes) -> None:
            self._refused = True
            self._cancel_timer()
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def _cancel_timer(self) -> None:
            timer = getattr(self, "_head_timer", None)
            if timer is not None:
                timer.cancel()
                self._head_timer = None


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that put these limits in place."""
    if not HAVE_HTTPTOOLS:  # pragma: no cover
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
    return {"http": BoundedHttpToolsProtocol, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
