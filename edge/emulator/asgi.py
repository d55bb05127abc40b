"""The emulator's HTTP front: an ASGI app that turns ASGI into ``EdgeRequest`` and back.

It is deliberately plain ASGI rather than a routed Starlette app: the edge core does its own
routing, and every microsecond of framework work lands on the cache-hit path (see `eaves bench`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from edge import bootstrap, errors
from edge.app import EdgeApp
from edge.emulator.adapters import AsyncLmdbKV, HttpxOriginClient, LmdbRateLimiter
from edge.emulator.counters import ProcessRateLimiter
from edge.emulator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge.emulator.metrics import MetricsExporter, exporter_from_env
from edge.emulator.metrics_auth import metrics_refused, metrics_token_matches
from edge.http import EdgeRequest, EdgeResponse
from edge.logs import RequestLog, fan_out
from edge.memory import SystemClock, TaskBackground
from edge.settings import EdgeSettings, SettingsError
from shared.jsonlog import BufferedLineWriter
from shared.kv_lmdb import LmdbKV
from shared.local_stack import LocalStack

DEFAULT_LOG_FLUSH_S = 0.2
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def load_intent(environ: Mapping[str, str]) -> tuple[Any, Any]:
    """The intent model and policy from the settings the edge is built from (``edge.bootstrap.load_intent``)."""
    return bootstrap.load_intent(environ)


def logging_enabled(environ: dict[str, str]) -> bool:
    """Per-request JSON log lines on stdout: on unless EAVES_LOG=off (the benchmark turns them off)."""
    return environ.get("EAVES_LOG", "on").lower() not in ("off", "0", "false", "no")


def log_flush_interval(environ: Mapping[str, str]) -> float:
    """Seconds a log line may wait to be written with others (EAVES_LOG_FLUSH_S, default 0.2)."""
    try:
        seconds = float(environ.get("EAVES_LOG_FLUSH_S", DEFAULT_LOG_FLUSH_S))
    except ValueError:
        raise SettingsError(f"EAVES_LOG_FLUSH_S must be a number of seconds, not "
                            f"{environ.get('EAVES_LOG_FLUSH_S')!r}") from None
    if not 0 < seconds <= 60:
        raise SettingsError("EAVES_LOG_FLUSH_S must be more than 0 and at most 60 seconds")
    return seconds


def one_process(environ: Mapping[str, str]) -> bool:
    """True when this edge is its server's only worker (``eaves edge`` says so in EAVES_EDGE_WORKERS); unknown
    counts as several, which is always correct, only slower (edge.emulator.counters)."""
    return environ.get("EAVES_EDGE_WORKERS", "").strip() == "1"


def build_local_edge(data_dir: Path, environ: dict[str, str] | None = None, exporter: MetricsExporter | None = None,
                     log: RequestLog | None = None) -> tuple[EdgeApp, HttpxOriginClient]:
    """The emulator's EdgeApp over LMDB and httpx, built from ``environ`` (the process environment by default);
    observed by ``exporter``'s metrics and ``log`` when given."""
    environ = dict(os.environ if environ is None else environ)
    stack = LocalStack(data_dir)
    settings = EdgeSettings.from_mapping(environ)
    if not settings.origin_secret:
        settings = dataclasses.replace(settings, origin_secret=stack.origin_secret())
    origin = HttpxOriginClient(settings.origin_url)
    classifier, policy = load_intent(environ)
    app = EdgeApp(
        settings=settings,
        kv=AsyncLmdbKV(LmdbKV(stack.kv_path)),
        origin=origin,
        limiter=(ProcessRateLimiter(stack.ratelimit_path) if one_process(environ)
                 else LmdbRateLimiter(stack.ratelimit_path)),
        clock=SystemClock(),
        background=TaskBackground(),
        classifier=classifier,
        policy=policy,
        observer=fan_out(exporter.metrics.observe if exporter else None, log.observe if log else None),
        runtime="cpython",
    )
    return app, origin


class EdgeASGI:
    def __init__(self, data_dir: Path, environ: dict[str, str] | None = None) -> None:
        self._data_dir = data_dir
        self._environ = environ
        self.edge: EdgeApp | None = None
        self._origin: HttpxOriginClient | None = None
        self.metrics = exporter_from_env(dict(os.environ if environ is None else environ))
        self._metrics_token: str | None = None
        self.log: RequestLog | None = None

    def _ensure(self) -> EdgeApp:
        if self.edge is None:
            settings = dict(os.environ if self._environ is None else self._environ)
            if logging_enabled(settings) and self.log is None:
                # Batched writes: one per 256 lines or EAVES_LOG_FLUSH_S (0.2 s), not one per request; and at a stop.
                self.log = RequestLog(BufferedLineWriter("edge", interval_s=log_flush_interval(settings)))
            edge, self._origin = build_local_edge(self._data_dir, self._environ, self.metrics, self.log)
            if self.metrics is not None:
                self.metrics.metrics.watch_breaker("origin", lambda: edge.breaker.state)
            self.edge = edge
        return self.edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._ensure()
                except Exception as exc:  # report, don't hang: uvicorn prints this and exits
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                if self.metrics is not None:
                    self.metrics.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """A clean stop: the last metrics snapshot, every buffered log line and every rate-limit count written,
        the origin pool closed."""
        if self.log is not None:
            self.log.writer.flush()
        if self.metrics is not None:
            await self.metrics.stop()
        if self._origin is not None:
            await self._origin.aclose()
            self._origin = None
        if self.edge is not None and isinstance(self.edge.limiter, ProcessRateLimiter):
            self.edge.limiter.close()  # every count written back, and the counters free for the next edge

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self._ensure()
        if scope["path"] == "/metrics" and self.metrics is not None:
            if not self._metrics_token_ok(scope):
                await _send_response(metrics_refused(), send)
                return
            await _send_metrics(self.metrics, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if len(headers) != len(scope["headers"]):
            headers = joined_headers(scope["headers"])
        limit = edge.settings.max_body_bytes
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                # Stop reading: the core turns an over-long body into a 413 without parsing it.
                break
        client = scope.get("client")
        request = EdgeRequest(scope["method"], scope["path"], headers, body,
                              scope.get("query_string", b"").decode("latin-1"), client[0] if client else "")
        response = await edge.handle(request)
        await _send_response(response, send)

    def _metrics_token_ok(self, scope: Scope) -> bool:
        # /metrics shares the client-facing port, so it answers only the operator's token (edge.emulator.metrics_auth).
        if self._metrics_token is None:
            self._metrics_token = LocalStack(self._data_dir).metrics_token()
        return metrics_token_matches(scope["headers"], self._metrics_token)


def joined_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Repeated header fields joined with ", ", as the Fetch API's ``Headers.get`` does on Workers, so
    the core sees the same thing on both runtimes (e.g. two Authorization headers, which it refuses)."""
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1")
        text = value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


# Header names as bytes, remembered: a hit sends the same ~10 names every time (bounded: an origin's
# response on a miss may bring names of its own).
_NAMES: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    raw = _NAMES[name] = name.encode("latin-1")
    if len(_NAMES) > 1024:
        _NAMES.clear()
    return raw


async def _send_response(response: EdgeResponse, send: Send) -> None:
    names = _NAMES
    # Latin-1, as ASGI headers are; an ASCII value (nearly all) takes the faster default encoder, same bytes.
    raw_headers = [(names.get(k) or _name(k), v.encode() if v.isascii() else v.encode("latin-1"))
                   for k, v in response.headers if k != "content-type"]
    raw_headers.append((b"content-type", response.content_type.encode("latin-1")))
    body = response.body
    if isinstance(body, bytes | bytearray):
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": bytes(body)})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": raw_headers})
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except errors.EdgeError:
        pass  # the status line is gone; the stream's own error event (if any) was already relayed
    await send({"type": "http.response.body", "body": b""})


async def _send_metrics(exporter: MetricsExporter, send: Send) -> None:
    body = exporter.render()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", METRICS_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> EdgeASGI:
    """uvicorn factory (one per worker process), configured from the environment."""
    return EdgeASGI(Path(os.environ.get("EAVES_DATA_DIR", ".eaves")))
